module github.com/latchkey/latchkey/services/audit

go 1.26
