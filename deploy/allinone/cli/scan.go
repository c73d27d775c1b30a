package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// Finding is one key scan found: where, of which type, and its display prefix (the prefix
// and 8 characters, keyformat.DisplayPrefix), never the key. It is what `scan --json`
// prints, one object a line.
type Finding struct {
	// File is the path as given or walked; "-" for standard input.
	File string `json:"file"`
	// Line and Column are 1-based; Column counts bytes.
	Line   int `json:"line"`
	Column int `json:"column"`
	// Type is the key type's name in the profile.
	Type          string `json:"type"`
	DisplayPrefix string `json:"display_prefix"`
	// Verified: the checksum matched (keyformat.Found.Verified); Legacy: a legacy prefix.
	Verified bool `json:"verified"`
	Legacy   bool `json:"legacy"`
}

// Scan finds the keys of reg in text, named name, with the finder the keys service judges
// leak reports by (keyformat.Registry.Find), and gives their positions.
func Scan(reg *keyformat.Registry, name string, text []byte) []Finding {
	found := reg.Find(text)
	out := make([]Finding, 0, len(found))
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
		out = append(out, Finding{
			File: name, Line: line, Column: f.Start - lineStart + 1, Type: f.Type.Name,
			DisplayPrefix: keyformat.DisplayPrefix(k), Verified: f.Verified, Legacy: f.Legacy,
		})
	}
	return out
}

// defaultMaxSize is scan's --max-size: larger files are skipped (with a note), so that a
// disk image or a database dump does not take its size in memory.
const defaultMaxSize = 10 << 20

func (a *app) scanCmd() *cobra.Command {
	var profile string
	var maxSize int64
	c := &cobra.Command{
		Use:         "scan [PATH...]",
		Annotations: map[string]string{pathArgs: "yes"},
		Short:       "Find API keys in files (exit 1 when one is found); works offline",
		Long: `scan finds the keys of a key profile in files, with the finder the keys service judges
leak reports by: whole tokens that parse as keys, verified by their checksum or, for a
type without one and for legacy prefixes, flagged unverified.

Each PATH is a file, or a directory walked for files (skipping .git); none, or "-", reads
standard input. Symbolic links: a PATH named is followed (a link to a file or a directory);
inside a directory, a link to a file is followed and read, a link to a directory is not
(that would walk in loops; a note on standard error names it). Files over --max-size are
skipped with a note on standard error. Each key found is printed as
  path:line:column: type display-prefix… verified|unverified
and never in full, so the output can go where the key must not. With --json, one object a
line. It needs no login and no server.

A file or directory that cannot be read is reported on standard error and the scan goes
on. Exit status: 2 when anything could not be read (or on bad usage: an unknown profile),
even if keys were found; else 1 when a key was found; else 0.`,
		Example: `  latchkey scan .
  git diff --cached | latchkey scan -
  latchkey scan --profile gmk deploy/ --json | jq -r .file`,
		Args: func(_ *cobra.Command, _ []string) error {
			if maxSize < 1 {
				return usageError{fmt.Errorf("--max-size %d is not a positive number of bytes", maxSize)}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, paths []string) error {
			reg, err := keyformat.LoadProfile(profile)
			if err != nil {
				_, _ = fmt.Fprintln(a.stderr, "latchkey scan:", err)
				return exitStatus(2)
			}
			if len(paths) == 0 {
				paths = []string{"-"}
			}
			sc := &scanner{app: a, reg: reg, maxSize: maxSize}
			for _, p := range paths {
				sc.path(p)
			}
			switch {
			case sc.failed:
				return exitStatus(2)
			case sc.found > 0:
				return exitStatus(1)
			}
			return nil
		},
	}
	def := os.Getenv("LATCHKEY_KEY_PROFILE")
	if def == "" {
		def = "default"
	}
	c.Flags().StringVar(&profile, "profile", def, "the key profile: a built-in name or a JSON file (LATCHKEY_KEY_PROFILE sets the default)")
	c.Flags().Int64Var(&maxSize, "max-size", defaultMaxSize, "skip files larger than this many bytes")
	return c
}

// scanner is one run of scan: what it found and whether anything failed.
type scanner struct {
	*app
	reg     *keyformat.Registry
	maxSize int64
	found   int
	// failed: something could not be read (exit 2).
	failed bool
}

// fail reports an error and goes on.
func (sc *scanner) fail(err error) {
	_, _ = fmt.Fprintln(sc.stderr, "latchkey scan:", err)
	sc.failed = true
}

// note says on standard error why something was not scanned; it is no error.
func (sc *scanner) note(format string, args ...any) {
	_, _ = fmt.Fprintf(sc.stderr, "latchkey scan: "+format+"\n", args...)
}

// path scans one PATH of the command line: "-", a file (whatever it is: a link is
// followed, a pipe read) or a directory, walked.
func (sc *scanner) path(p string) {
	if p == "-" {
		sc.read("-", sc.stdin)
		return
	}
	info, err := os.Stat(p) // follows a link named on the command line
	if err != nil {
		sc.fail(err)
		return
	}
	if !info.IsDir() {
		sc.file(p, info)
		return
	}
	if l, err := os.Lstat(p); err == nil && l.Mode()&fs.ModeSymlink != 0 {
		p += string(filepath.Separator) // WalkDir does not follow a link at its root; "link/" is the directory
	}
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			sc.fail(err) // and go on: WalkDir skips what it could not read
			return nil
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			info, err := os.Stat(path)
			switch {
			case err != nil:
				sc.note("%s: a broken symbolic link, skipped", path)
			case info.IsDir():
				sc.note("%s: a symbolic link to a directory, not followed", path)
			case info.Mode().IsRegular():
				sc.file(path, info)
			}
			return nil
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				sc.fail(err)
				return nil
			}
			sc.file(path, info)
		}
		return nil // a device, a socket, a pipe inside a tree: not a file to scan
	})
	if err != nil {
		sc.fail(err)
	}
}

// file scans the file at path unless it is over --max-size.
func (sc *scanner) file(path string, info fs.FileInfo) {
	if info.Mode().IsRegular() && info.Size() > sc.maxSize {
		sc.note("%s: skipped, %d bytes is over --max-size %d", path, info.Size(), sc.maxSize)
		return
	}
	f, err := os.Open(path) //nolint:gosec // reading the files named is the point
	if err != nil {
		sc.fail(err)
		return
	}
	defer func() { _ = f.Close() }()
	sc.read(path, f)
}

// read scans what r holds, at most --max-size bytes: more is an error (a file that grew,
// a pipe, standard input).
func (sc *scanner) read(name string, r io.Reader) {
	said := name
	if name == "-" {
		said = "standard input"
	}
	text, err := io.ReadAll(io.LimitReader(r, sc.maxSize+1))
	var pathErr *fs.PathError
	if err != nil && !errors.As(err, &pathErr) { // a PathError names the file already
		err = fmt.Errorf("%s: %w", said, err)
	}
	if err != nil {
		sc.fail(err)
		return
	}
	if int64(len(text)) > sc.maxSize {
		sc.fail(fmt.Errorf("%s: more than --max-size %d bytes", said, sc.maxSize))
		return
	}
	for _, f := range Scan(sc.reg, name, text) {
		sc.found++
		if err := sc.printFinding(f); err != nil {
			sc.fail(err)
			return
		}
	}
}

func (a *app) printFinding(f Finding) error {
	if a.json {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	judged := "verified"
	switch {
	case f.Legacy:
		judged = "unverified (legacy prefix)"
	case !f.Verified:
		judged = "unverified (type without checksum)"
	}
	_, err := fmt.Fprintf(a.stdout, "%s:%d:%d: %s %s %s\n", f.File, f.Line, f.Column, f.Type, prefix(f.DisplayPrefix), judged)
	return err
}
