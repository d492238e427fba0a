package multitest_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/offsync/offsync/internal/multitest"
)

// named serves on loopback, answering each line with its name.
func named(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintln(c, name)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func ask(t *testing.T, c net.Conn) (string, error) {
	t.Helper()
	if _, err := fmt.Fprintln(c, "who"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestBalancer(t *testing.T) {
	a, b := named(t, "a"), named(t, "b")
	bal := multitest.NewBalancer(t, a)
	first, err := net.Dial("tcp", bal.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if got, err := ask(t, first); got != "a" || err != nil {
		t.Fatalf("through the balancer: %q, %v; want a", got, err)
	}

	// Down: a new connection is accepted and closed, the joined one stays.
	bal.Down()
	refused, err := net.Dial("tcp", bal.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	if got, err := ask(t, refused); err == nil {
		t.Fatalf("a down balancer answered %q", got)
	}

	// Retargeted: new connections reach b, the old one still a.
	bal.Retarget(b)
	second, err := net.Dial("tcp", bal.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if got, err := ask(t, second); got != "b" || err != nil {
		t.Fatalf("after Retarget: %q, %v; want b", got, err)
	}
	if got, err := ask(t, first); got != "a" || err != nil {
		t.Fatalf("the first connection after Retarget: %q, %v; want a", got, err)
	}

	// Several targets are taken in turn.
	bal.Retarget(a, b)
	var got []string
	for range 4 {
		c, err := net.Dial("tcp", bal.Addr)
		if err != nil {
			t.Fatal(err)
		}
		name, err := ask(t, c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, name)
	}
	if strings.Join(got, "") != "abab" {
		t.Fatalf("two targets in turn: %v", got)
	}

	// A target that goes away closes its clients' connections.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bal.Retarget(dead.Addr().String())
	third, err := net.Dial("tcp", bal.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	s, err := dead.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	dead.Close()
	if _, err := io.ReadAll(third); err != nil {
		t.Fatalf("the client of a dead target: %v, want EOF", err)
	}
}

func TestWithAppName(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://u@127.0.0.1:5432/db?sslmode=disable": "postgres://u@127.0.0.1:5432/db?application_name=i1&sslmode=disable",
		"postgres://u@127.0.0.1:5432/db":                 "postgres://u@127.0.0.1:5432/db?application_name=i1",
		"host=127.0.0.1 dbname=db":                       "host=127.0.0.1 dbname=db application_name=i1",
	} {
		if got := multitest.WithAppName(dsn, "i1"); got != want {
			t.Errorf("WithAppName(%q) = %q, want %q", dsn, got, want)
		}
	}
}

func ExampleCheck() {
	applied := map[string][]string{"a": {"i1"}, "b": {"i1", "i2"}, "stray": {"i3"}}
	want := map[string]bool{"a": true, "b": true, "c": true}
	errs := multitest.Check(applied, want)
	lines := make([]string, len(errs))
	for i, err := range errs {
		lines[i] = err.Error()
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// op "b" applied 2 times (by [i1 i2])
	// op "c" lost: the authority never applied it
	// the authority wrote a row with marker "stray" that no op carried
}
