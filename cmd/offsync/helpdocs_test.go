package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// repoRoot is the repository's top directory (this package is cmd/offsync).
var repoRoot = filepath.Join("..", "..")

// pathRE matches path-like words of a help text.
var pathRE = regexp.MustCompile(`\.?/?[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.*{}-]+)+`)

// repoPaths returns the words of text that name a file or folder of the
// repository: a relative path whose first folder is one of the repository's
// top-level folders (docs/, examples/, ...). Other paths in examples
// (./bin/resolver, /etc/...) are the user's, not ours.
func repoPaths(text string, top []string) []string {
	var out []string
	for _, w := range pathRE.FindAllString(text, -1) {
		w = strings.TrimRight(strings.TrimPrefix(w, "./"), ".")
		if strings.HasPrefix(w, "/") || strings.ContainsAny(w, "{}*") {
			continue
		}
		first, _, _ := strings.Cut(w, "/")
		if slices.Contains(top, first) {
			out = append(out, w)
		}
	}
	return out
}

// topLevel lists the repository's top-level folders.
func topLevel(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// helpTexts returns every help text of cmd and its subcommands, flags
// included, keyed by command path.
func helpTexts(cmd *cobra.Command) map[string]string {
	out := map[string]string{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		var b strings.Builder
		b.WriteString(c.Short + "\n" + c.Long + "\n" + c.Example + "\n")
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { b.WriteString(f.Usage + "\n") })
		}
		out[c.CommandPath()] = b.String()
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd)
	return out
}

// TestHelpTextsNameFilesThatExist: every file of the repository a help text
// names (docs/protocol.md, examples/...) exists.
func TestHelpTextsNameFilesThatExist(t *testing.T) {
	top := topLevel(t)
	named := 0
	for path, text := range helpTexts(rootCmd) {
		for _, p := range repoPaths(text, top) {
			named++
			if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(p))); err != nil {
				t.Errorf("%s: the help names %s, which is not in the repository", path, p)
			}
		}
	}
	if named < 2 {
		t.Fatalf("only %d repository paths found in the help texts", named)
	}
}

// The extractor finds the repository's paths and leaves the user's alone.
func TestRepoPathsNegativeControl(t *testing.T) {
	got := repoPaths("see docs/protocol.md and docs/nope.md; run ./examples/quickstart, "+
		"./bin/docs-resolver, /etc/bash_completion.d/offsync, /{kind}/{id}.", []string{"docs", "examples"})
	want := []string{"docs/protocol.md", "docs/nope.md", "examples/quickstart"}
	if !slices.Equal(got, want) {
		t.Fatalf("repoPaths = %q, want %q", got, want)
	}
}
