package pgtest

import (
	"fmt"
	"os"
	"strings"
)

// Server is a PostgreSQL server to make databases on outside a test, for
// the benchmark harness: the server named by OFFSYNC_POSTGRES_DSN, or a
// cluster of its own. Databases made with CreateDB are not dropped by
// themselves: Close drops them (or stops the whole cluster).
type Server struct {
	cluster *Cluster // nil on OFFSYNC_POSTGRES_DSN
	base    string   // the DSN of OFFSYNC_POSTGRES_DSN
	dbs     []string
}

// StartServer returns the server named by OFFSYNC_POSTGRES_DSN when it is
// set; otherwise it starts a cluster from the server binaries, with
// settings ("name=value", each passed as -c) after pgtest's own test
// settings, so that they win: a benchmark passes "fsync=on",
// "synchronous_commit=on" and "full_page_writes=on" to measure a durable
// server. Without OFFSYNC_POSTGRES_DSN or server binaries it returns the
// reason (see Available).
func StartServer(settings ...string) (*Server, error) {
	if base := os.Getenv(EnvDSN); base != "" {
		return &Server{base: base}, nil
	}
	p, err := procState()
	if err != nil {
		return nil, err
	}
	var opts []string
	for _, s := range settings {
		if !strings.Contains(s, "=") || strings.ContainsAny(s, " '\"") {
			return nil, fmt.Errorf("pgtest: setting %q: want name=value without spaces or quotes", s)
		}
		opts = append(opts, "-c", s)
	}
	c, err := p.start(opts)
	if err != nil {
		return nil, err
	}
	return &Server{cluster: c}, nil
}

// External reports whether the server is the one of OFFSYNC_POSTGRES_DSN.
func (s *Server) External() bool { return s.cluster == nil }

// CreateDB creates a fresh database, a copy of template when it is not
// empty (a database made by CreateDB, with no connection open), and returns
// its DSN and name.
func (s *Server) CreateDB(template string) (dsn, name string, err error) {
	name = dbName()
	if template == "" {
		template = "template0"
	}
	q := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template)
	if s.cluster != nil {
		err = s.cluster.exec(q)
		dsn = s.cluster.DSN(name)
	} else {
		err = externalExec(s.base, q)
		if err == nil {
			dsn, err = withDatabase(s.base, name)
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("pgtest: create database: %w", err)
	}
	s.dbs = append(s.dbs, name)
	return dsn, name, nil
}

// DropDB drops a database made by CreateDB, closing its connections.
func (s *Server) DropDB(name string) error {
	q := fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)
	var err error
	if s.cluster != nil {
		err = s.cluster.exec(q)
	} else {
		err = externalExec(s.base, q)
	}
	if err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", name, err)
	}
	for i, n := range s.dbs {
		if n == name {
			s.dbs = append(s.dbs[:i], s.dbs[i+1:]...)
			break
		}
	}
	return nil
}

// Close stops the cluster and removes its directory, or, on
// OFFSYNC_POSTGRES_DSN, drops every database CreateDB made.
func (s *Server) Close() error {
	if s.cluster != nil {
		return s.cluster.Stop()
	}
	var first error
	for len(s.dbs) > 0 {
		if err := s.DropDB(s.dbs[0]); err != nil {
			if first == nil {
				first = err
			}
			s.dbs = s.dbs[1:]
		}
	}
	return first
}
