module cairn.example/nodeagent

go 1.19
