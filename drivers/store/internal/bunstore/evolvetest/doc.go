// Package evolvetest holds the schema evolution tests every bun store runs
// (SQLite and Postgres): what Register adds to a typed table whose model
// gained a field, and what it refuses. A driver's test calls Run with a
// function that makes a new, empty database and opens stores on it.
package evolvetest
