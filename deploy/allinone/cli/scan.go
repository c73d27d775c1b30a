package cli

import (
	"bytes"
	"encoding/json"
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

func (a *app) scanCmd() *cobra.Command {
	var profile string
	c := &cobra.Command{
		Use:   "scan [PATH...]",
		Short: "Find API keys in files (exit 1 when one is found); works offline",
		Long: `scan finds the keys of a key profile in files, with the finder the keys service judges
leak reports by: whole tokens that parse as keys, verified by their checksum or, for a
type without one and for legacy prefixes, flagged unverified.

Each PATH is a file, or a directory walked for files (skipping .git); none, or "-", reads
standard input. Each key found is printed as
  path:line:column: type display-prefix… verified|unverified
and never in full, so the output can go where the key must not. With --json, one object a
line. It needs no login and no server.

Exit status: 0 when nothing was found, 1 when a key was, 2 on an error (a file that cannot
be read, an unknown profile).`,
		Example: `  latchkey scan .
  git diff --cached | latchkey scan -
  latchkey scan --profile gmk deploy/ --json | jq -r .file`,
		RunE: func(_ *cobra.Command, paths []string) error {
			reg, err := keyformat.LoadProfile(profile)
			if err != nil {
				_, _ = fmt.Fprintln(a.stderr, "latchkey scan:", err)
				return exitStatus(2)
			}
			if len(paths) == 0 {
				paths = []string{"-"}
			}
			found, failed := 0, false
			report := func(name string, text []byte) error {
				for _, f := range Scan(reg, name, text) {
					found++
					if err := a.printFinding(f); err != nil {
						return err
					}
				}
				return nil
			}
			for _, p := range paths {
				if p == "-" {
					text, err := io.ReadAll(a.stdin)
					if err == nil {
						err = report("-", text)
					}
					if err != nil {
						_, _ = fmt.Fprintln(a.stderr, "latchkey scan: standard input:", err)
						failed = true
					}
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
					return report(path, text)
				})
				if err != nil {
					_, _ = fmt.Fprintln(a.stderr, "latchkey scan:", err)
					failed = true
				}
			}
			switch {
			case failed:
				return exitStatus(2)
			case found > 0:
				return exitStatus(1)
			}
			return nil
		},
	}
	def := os.Getenv("LATCHKEY_KEY_PROFILE")
	if def == "" {
		def = "default"
	}
	c.Flags().StringVar(&profile, "profile", def, "the key profile: a built-in name or a JSON file (default LATCHKEY_KEY_PROFILE, else default)")
	return c
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
