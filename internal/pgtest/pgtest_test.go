package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/offsync/offsync/internal/pgtest"
)

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestNewGivesFreshDatabasesDroppedAfterTheTest(t *testing.T) {
	var first, second string
	t.Run("use", func(t *testing.T) {
		first, second = pgtest.New(t), pgtest.New(t)
		if first == second {
			t.Fatalf("New returned the same DSN twice: %s", first)
		}
		a, b := connect(t, first), connect(t, second)
		if _, err := a.Exec(t.Context(), "CREATE TABLE x (id int); INSERT INTO x VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		// b is another database: the table is not there.
		var n int
		err := b.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = 'x'").Scan(&n)
		if err != nil || n != 0 {
			t.Fatalf("second database sees table x: n=%d err=%v", n, err)
		}
		var user string
		if err := a.QueryRow(t.Context(), "SELECT current_user").Scan(&user); err != nil {
			t.Fatal(err)
		}
	})
	if t.Failed() {
		return
	}
	// After the subtest, both databases are gone.
	cfg, err := pgx.ParseConfig(first)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pgx.Connect(t.Context(), first)
	if err == nil {
		t.Fatalf("database %s still exists after its test", cfg.Database)
	}
	_, err = pgx.Connect(t.Context(), second)
	if err == nil {
		t.Fatalf("database of %s still exists after its test", second)
	}
}

func TestNewClusterStartsAndStopsAndRemovesItsDirectory(t *testing.T) {
	if os.Getenv(pgtest.EnvDSN) != "" {
		// NewCluster always starts a server; it needs the binaries.
		if err := pgtestBinaries(); err != nil {
			t.Skipf("pgtest: SKIPPING, no PostgreSQL binaries besides %s: %v", pgtest.EnvDSN, err)
		}
	}
	c := pgtest.NewCluster(t)
	dsn := c.NewDB(t)
	conn := connect(t, dsn)
	var one int
	if err := conn.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	var fsync string
	if err := conn.QueryRow(t.Context(), "SHOW fsync").Scan(&fsync); err != nil || fsync != "off" {
		t.Fatalf("fsync = %q, %v; want off", fsync, err)
	}
	if os.Geteuid() == 0 {
		// The server must not run as root (PostgreSQL refuses to).
		st, err := os.Stat(filepath.Join(c.Dir(), "data"))
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid == 0 {
			t.Fatalf("data directory owned by root")
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("cluster directory %s still there after Stop: %v", c.Dir(), err)
	}
	if _, err := conn.Exec(t.Context(), "SELECT 1"); err == nil {
		t.Fatalf("server still answers after Stop")
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func pgtestBinaries() error {
	if _, err := exec.LookPath("initdb"); err == nil {
		return nil
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(m) == 0 {
		return errors.New("no initdb")
	}
	return nil
}

func TestAvailable(t *testing.T) {
	err := pgtest.Available()
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and PostgreSQL unavailable: %v", err)
	}
	if err != nil {
		t.Skipf("pgtest: SKIPPING, PostgreSQL IS NOT AVAILABLE: %v", err)
	}
}

// TestWatchdogCleansUpAfterACrash runs this test binary as a child that
// starts a cluster and exits without any cleanup; the watchdog must stop the
// server and remove the directory.
func TestWatchdogCleansUpAfterACrash(t *testing.T) {
	if os.Getenv("PGTEST_CRASH_CHILD") == "1" {
		c := pgtest.NewCluster(t)
		fmt.Printf("DIR=%s\n", c.Dir())
		pid, err := os.ReadFile(filepath.Join(c.Dir(), "data", "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("PID=%s\n", strings.SplitN(string(pid), "\n", 2)[0])
		os.Exit(0) // no t.Cleanup: as if the binary crashed
	}
	if err := pgtestBinaries(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("pgtest: SKIPPING, no PostgreSQL binaries: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestWatchdogCleansUpAfterACrash$")
	cmd.Env = append(os.Environ(), "PGTEST_CRASH_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var dir string
	var pid int
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "DIR="); ok {
			dir = v
		}
		if v, ok := strings.CutPrefix(line, "PID="); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if dir == "" || pid == 0 {
		t.Fatalf("child printed no DIR and PID:\n%s", out)
	}
	root := filepath.Dir(dir)
	// Wait for the watchdog (a condition, not a duration; the deadline only
	// guards against a hang).
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, statErr := os.Stat(root)
		alive := syscall.Kill(pid, 0) == nil
		if errors.Is(statErr, fs.ErrNotExist) && !alive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the child exited: root %s stat=%v, postmaster %d alive=%v", root, statErr, pid, alive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Creating and dropping a database leaves no connection open: an
// administrative connection kept between tests would outlive them (and a
// background reader pgx starts on it after a slow write is a goroutine
// goleak reports at the end of the binary).
func TestNoAdministrativeConnectionLeftOpen(t *testing.T) {
	c := pgtest.NewCluster(t)
	if c == nil {
		return
	}
	t.Run("use", func(t *testing.T) {
		connect(t, c.NewDB(t))
	})
	conn := connect(t, c.DSN("postgres"))
	var n int
	err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d connections left open after the database's test ended", n)
	}
}
