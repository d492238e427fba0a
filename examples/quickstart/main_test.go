package main

import (
	"context"
	"os"
)

func Example() {
	dir, err := os.MkdirTemp("", "offsync-quickstart-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := run(context.Background(), os.Stdout, dir); err != nil {
		panic(err)
	}
	// Output:
	// both devices start from the same record:
	// laptop: mood=3 energy=5 notes="Old"
	// phone sync: pushed=1 conflicts=1 resolved=1
	// merged: local {mood:5 energy:5 notes:"My notes"} + server {mood:3 energy:7 notes:"Old"} -> {mood:5 energy:7 notes:"My notes"}
	// after sync, both devices hold the merged record:
	// phone:  mood=5 energy=7 notes="My notes"
	// laptop: mood=5 energy=7 notes="My notes"
}
