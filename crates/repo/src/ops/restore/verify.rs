//! `restore --verify`: reading every restored file back and checking it against the
//! snapshot's blobs.

use super::*;

impl Restorer {
    pub(super) fn verify_files(
        &self,
        keys: &cairn_pack::MasterKeys,
        index: &Index,
        files: &[usize],
    ) -> u64 {
        let mut verified = 0;
        for &i in files.iter().filter(|&&i| self.ok(i)) {
            match self.verify_file(keys, index, i) {
                Ok(()) => verified += 1,
                Err(message) => self.problem(i, message),
            }
        }
        verified
    }

    fn verify_file(
        &self,
        keys: &cairn_pack::MasterKeys,
        index: &Index,
        i: usize,
    ) -> std::result::Result<(), String> {
        let node = self.items[i].node();
        let mut file = std::fs::File::from(
            self.shared
                .fs
                .open(&self.items[i].rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
                .map_err(|e| e.to_string())?,
        );
        let mut buffer = Vec::new();
        for (n, id) in node.content.iter().enumerate() {
            let len = index
                .get(id)
                .map(|l| l.entry.plain_len as usize)
                .ok_or_else(|| format!("blob {id} not indexed"))?;
            buffer.resize(len, 0);
            file.read_exact(&mut buffer)
                .map_err(|e| format!("chunk {n}: {e}"))?;
            if keys.blob_id(&buffer) != *id {
                return Err(format!("chunk {n} does not match blob {id}"));
            }
        }
        let mut rest = [0u8; 1];
        if file.read(&mut rest).map_err(|e| e.to_string())? != 0 {
            return Err("file is longer than its content".into());
        }
        Ok(())
    }
}
