// Command keyscan finds the keys of a profile in files, with the finder the keys service
// judges leak reports by (keyformat.Registry.Find): whole tokens that parse as keys,
// verified by their checksum or, for a type without one and for legacy prefixes, flagged
// unverified.
//
//	keyscan [-profile name|file] [path…]
//
// Each path is a file, or a directory walked for files (skipping .git); none, or "-",
// reads standard input. Each key found is printed as `path:line:column: type display-prefix…
// verified|unverified` and never in full, so the output can go where the key must not.
// The exit status is 0 when nothing was found, 1 when a key was, 2 on an error.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the command: its arguments, input and outputs, and the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("keyscan", flag.ContinueOnError)
	flags.SetOutput(stderr)
	profile := flags.String("profile", "default", "the key profile: a built-in name or a JSON file (as LATCHKEY_KEY_PROFILE)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	reg, err := keyformat.LoadProfile(*profile)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "keyscan:", err)
		return 2
	}
	paths := flags.Args()
	if len(paths) == 0 {
		paths = []string{"-"}
	}
	found, failed := 0, false
	scan := func(name string, text []byte) {
		found += report(stdout, reg, name, text)
	}
	for _, p := range paths {
		if p == "-" {
			text, err := io.ReadAll(stdin)
			if err != nil {
				_, _ = fmt.Fprintln(stderr, "keyscan: reading standard input:", err)
				failed = true
				continue
			}
			scan("-", text)
			continue
		}
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && d.Name() == ".git":
				return filepath.SkipDir
			case !d.Type().IsRegular():
				return nil
			}
			text, err := os.ReadFile(path) //nolint:gosec // reading the files named is the point
			if err != nil {
				return err
			}
			scan(path, text)
			return nil
		})
		if err != nil {
			_, _ = fmt.Fprintln(stderr, "keyscan:", err)
			failed = true
		}
	}
	switch {
	case failed:
		return 2
	case found > 0:
		return 1
	default:
		return 0
	}
}

// report prints each key of reg in text, by position and display prefix, and counts them.
func report(w io.Writer, reg *keyformat.Registry, name string, text []byte) int {
	found := reg.Find(text)
	line, lineStart, at := 1, 0, 0
	for _, f := range found {
		for {
			i := bytes.IndexByte(text[at:f.Start], '\n')
			if i < 0 {
				break
			}
			line, at = line+1, at+i+1
			lineStart = at
		}
		k, err := reg.Parse(string(text[f.Start:f.End]))
		if err != nil {
			continue // cannot happen: Find returns what Parse accepts
		}
		judged := "verified"
		switch {
		case f.Legacy:
			judged = "unverified (legacy prefix)"
		case !f.Verified:
			judged = "unverified (type without checksum)"
		}
		_, _ = fmt.Fprintf(w, "%s:%d:%d: %s %s… %s\n", name, line, f.Start-lineStart+1, f.Type.Name, k, judged)
	}
	return len(found)
}
