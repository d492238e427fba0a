package plugins_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/plugins"
)

// A host loads the inventory plugin and asks it about one conflict: ten in
// stock at the base, three sold offline, five delivered on the server.
func ExampleLoad() {
	ctx := context.Background()
	r, closer, err := plugins.Load(ctx, inventoryBin, &plugins.LoadOptions{
		CallTimeout: 5 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closer.Close()

	base := json.RawMessage(`{"name":"Widget","quantity":10}`)
	c := core.Conflict{
		Kind: "item", ID: "widget",
		Op:     core.Op{OpID: "op1", Kind: "item", ID: "widget", Type: core.OpUpsert, BasePayload: base},
		Base:   &core.Record{Kind: "item", ID: "widget", Data: base},
		Local:  &core.Record{Kind: "item", ID: "widget", Data: json.RawMessage(`{"name":"Widget","quantity":7}`)},
		Server: &core.Record{Kind: "item", ID: "widget", Data: json.RawMessage(`{"name":"Blue widget","quantity":15}`)},
	}
	res, err := r.Resolve(ctx, c)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(core.StrategyName(r), res.Action, res.Data["name"], res.Data["quantity"])
	// Output: plugin:inventory accept_merged Blue widget 12
}
