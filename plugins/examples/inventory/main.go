// Command inventory is an offsync resolver plugin with the business rules of
// an inventory record: stock counters merge by applying both sides' deltas
// from the base, text and list fields merge as autoPreserve does, and a merge
// that would make a counter negative (an oversell) is refused. See README.md.
//
// It is started by a host through plugins.Load, never by hand:
//
//	inventory [-counters quantity,reserved]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/offsync/offsync/plugins"
)

func main() {
	counters := flag.String("counters", "quantity,reserved", "comma-separated stock counter fields, merged by deltas")
	flag.Parse()
	if path := os.Getenv(envStarted); path != "" {
		// Test hook: record each start of the process.
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintln(f, os.Getpid())
			f.Close()
		}
	}
	rules := &Rules{Counters: splitList(*counters)}
	plugins.Serve(rules, &plugins.ServeOptions{Name: "inventory", Version: "1.0.0", Kinds: []string{"item"}})
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
