module github.com/latchkey/latchkey/services/keys

go 1.26
