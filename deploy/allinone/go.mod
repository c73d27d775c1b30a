module github.com/latchkey/latchkey/deploy/allinone

go 1.26
