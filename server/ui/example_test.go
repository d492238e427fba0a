package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
	"github.com/offsync/offsync/server/ui"
)

// The dashboard of an authority, mounted at /ui; its API answers an
// administrator only.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-ui-example-")
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	svc, err := server.New(ctx, store, &server.Options{
		Tables: []core.Table{core.Documents("note")},
		Authenticate: func(_ context.Context, token string) (core.Principal, error) {
			if token == "ops-secret" {
				return core.Principal{ID: "ops", Attrs: map[string]string{"role": server.AdminRole}}, nil
			}
			return core.Principal{}, core.ErrUnauthorized
		},
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	dash, err := ui.New(ctx, svc, store, nil)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", http.StripPrefix("/ui", dash))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, _ := http.Get(srv.URL + "/ui/api/snapshot")
	resp.Body.Close()
	fmt.Println("without a token:", resp.StatusCode)

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/api/snapshot", nil)
	req.Header.Set("Authorization", "Bearer ops-secret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var snap ui.Snapshot
	_ = json.NewDecoder(resp.Body).Decode(&snap)
	for _, k := range snap.Kinds {
		fmt.Printf("as the administrator: %s, %d rows, %d tombstones\n", k.Kind, k.Rows, k.Tombstones)
	}
	// Output:
	// without a token: 401
	// as the administrator: note, 0 rows, 0 tombstones
}
