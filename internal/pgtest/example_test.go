package pgtest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/offsync/offsync/internal/pgtest"
)

func ExampleNew() {
	// In a test: dsn := pgtest.New(t)
	test := func(t *testing.T) {
		dsn := pgtest.New(t)
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT 40 + 2").Scan(&n); err != nil {
			t.Fatal(err)
		}
		fmt.Println(n)
	}
	_ = test
	fmt.Println("ok")
	// Output: ok
}
