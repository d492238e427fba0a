// Command quickstart runs offsync end to end in one process: an authority on
// a SQLite file, two replicas (a phone and a laptop) with their own SQLite
// files, offline edits to the same record on both, a sync, and the conflict
// resolved by autoPreserve — the field-level merge that keeps both edits.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
	"github.com/uptrace/bun"
)

// DailyFeeling is a typed, synced table: a bun model embedding SyncColumns.
type DailyFeeling struct {
	bun.BaseModel `bun:"table:daily_feelings"`
	ID            string `bun:"id,pk" json:"id"`
	Mood          int    `json:"mood"`
	Energy        int    `json:"energy"`
	Notes         string `json:"notes"`
	core.SyncColumns
}

var feelings = core.NewTable[DailyFeeling]("daily_feeling")

func main() {
	dir, err := os.MkdirTemp("", "offsync-quickstart-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := run(context.Background(), os.Stdout, dir); err != nil {
		log.Fatal(err)
	}
}

type device struct {
	name   string
	store  *sqlite.Store
	engine *core.Engine
	writer *core.Writer[DailyFeeling]
}

func open(ctx context.Context, dir, name string, authority core.Transport) (*device, error) {
	store, err := sqlite.Open(ctx, filepath.Join(dir, name+".db"), nil)
	if err != nil {
		return nil, err
	}
	eng, err := core.NewEngine(ctx, store, authority, &core.Options{
		Tables:    []core.Table{feelings},
		Conflicts: core.Conflicts{Default: core.AutoPreserve},
	})
	if err != nil {
		return nil, err
	}
	return &device{name: name, store: store, engine: eng, writer: core.WriterFor(eng, feelings)}, nil
}

func (d *device) close() {
	d.engine.Close()
	d.store.Close()
}

func (d *device) show(ctx context.Context, w io.Writer, id string) error {
	var f DailyFeeling
	// The replica is an ordinary database: read it with bun.
	if err := d.store.DB().NewSelect().Model(&f).Where("id = ?", id).Scan(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "%-7s mood=%d energy=%d notes=%q\n", d.name+":", f.Mood, f.Energy, f.Notes)
	return nil
}

func run(ctx context.Context, w io.Writer, dir string) error {
	authStore, err := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), &sqlite.Options{Synchronous: "FULL"})
	if err != nil {
		return err
	}
	defer authStore.Close()
	authority, err := server.New(ctx, authStore, &server.Options{Tables: []core.Table{feelings}})
	if err != nil {
		return err
	}
	defer authority.Close()

	// server.Service is itself a core.Transport: the replicas talk to it
	// in-process here; over a network they would use a transport driver.
	phone, err := open(ctx, dir, "phone", authority)
	if err != nil {
		return err
	}
	defer phone.close()
	laptop, err := open(ctx, dir, "laptop", authority)
	if err != nil {
		return err
	}
	defer laptop.close()

	events := phone.engine.Subscribe(16)
	defer events.Close()

	const id = "2026-11-24"
	if err := phone.writer.Insert(ctx, &DailyFeeling{ID: id, Mood: 3, Energy: 5, Notes: "Old"}); err != nil {
		return err
	}
	if _, err := phone.engine.Sync(ctx); err != nil {
		return err
	}
	if _, err := laptop.engine.Sync(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "both devices start from the same record:")
	if err := laptop.show(ctx, w, id); err != nil {
		return err
	}

	// Offline, each device edits different fields of the same record.
	if err := laptop.writer.Update(ctx, &DailyFeeling{ID: id, Mood: 3, Energy: 7, Notes: "Old"}, core.Changed("energy")); err != nil {
		return err
	}
	if err := phone.writer.Update(ctx, &DailyFeeling{ID: id, Mood: 5, Energy: 5, Notes: "My notes"}, core.Changed("mood", "notes")); err != nil {
		return err
	}

	// The laptop syncs first; the phone's push then meets a conflict (409),
	// which autoPreserve resolves by keeping the fields each side changed.
	if _, err := laptop.engine.Sync(ctx); err != nil {
		return err
	}
	stats, err := phone.engine.Sync(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "phone sync: pushed=%d conflicts=%d resolved=%d\n", stats.Pushed, stats.Conflicts, stats.Resolved)
	for len(events.C) > 0 {
		if m, ok := (<-events.C).(core.DataMerged); ok {
			fmt.Fprintf(w, "merged: local %v + server %v -> %v\n", fields(m.Local), fields(m.Server), fields(m.Merged))
		}
	}
	if _, err := laptop.engine.Sync(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "after sync, both devices hold the merged record:")
	if err := phone.show(ctx, w, id); err != nil {
		return err
	}
	return laptop.show(ctx, w, id)
}

// fields prints a record's business fields in a stable order.
func fields(m map[string]any) string {
	return fmt.Sprintf("{mood:%v energy:%v notes:%q}", m["mood"], m["energy"], m["notes"])
}
