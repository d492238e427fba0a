// Package docscheck holds the tests that keep the project's documentation
// honest: every relative link of README.md and docs/*.md resolves (files
// and #anchors), every test docs/guarantees.md names exists in the file it
// links, nothing cites a document outside the repository, and the
// repository's size check catches a large tracked file. It has no code of
// its own; the help texts of the offsync command are checked by the
// command's own tests.
package docscheck
