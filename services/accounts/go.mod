module github.com/latchkey/latchkey/services/accounts

go 1.26
