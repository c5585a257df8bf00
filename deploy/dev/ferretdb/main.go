// Command ferretdb-stepline runs FerretDB 1.24 (embeddable package) for Stepline's development and
// test infrastructure, on its PostgreSQL backend when given -postgresql-url and on SQLite otherwise.
// It is built and started by `python -m stepline.devinfra`.
//
// A plain `go install` of FerretDB's own command panics on a missing build/version/version.txt;
// the embeddable package does not need it, hence this wrapper.
//
//	ferretdb-stepline -listen 127.0.0.1:27018 -sqlite-dir /path/to/data
//	ferretdb-stepline -listen 127.0.0.1:27018 -sqlite-dir /path/to/data \
//		-postgresql-url postgres://stepline@127.0.0.1:5433/postgres
//
// The directory also holds the Unix socket between the front and FerretDB. SQLite's backend
// evaluates every filter but a lone `_id` by reading the whole collection into Go; PostgreSQL's
// pushes equality filters down into SQL, which keeps conditional updates fast as collections grow.
//
// It logs to stderr and stops cleanly on SIGTERM or SIGINT. Writes are serialised by a small front
// (writelock.go), because FerretDB 1.x does not apply conditional single-document updates atomically.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27018", "TCP address to listen on (loopback only)")
	dir := flag.String("sqlite-dir", "data", "directory holding the SQLite databases and the front's socket (created if missing)")
	pg := flag.String("postgresql-url", "", "use the PostgreSQL backend at this URL instead of SQLite")
	debug := flag.Bool("debug", false, "log at debug level")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if err := run(*listen, *dir, *pg, logger); err != nil {
		logger.Error("ferretdb-stepline failed", "error", err)
		os.Exit(1)
	}
}

func run(listen, dir, pg string, logger *slog.Logger) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("bad -listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen must be a loopback IP address, got %q", host)
	}

	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err = os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	// FerretDB wants a "file:" URI of an existing directory, ending with a slash.
	sqliteURL := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs) + "/"}).String()
	// FerretDB itself listens on a Unix socket; clients reach it through the write-serialising
	// front on `listen` (see writelock.go for why).
	sock := filepath.Join(abs, "ferretdb.sock")
	_ = os.Remove(sock)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	config := &ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: sock},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	}
	backend := sqliteURL
	if pg != "" {
		config.Handler, config.SQLiteURL, config.PostgreSQLURL = "postgresql", "", pg
		backend = pg
	}
	f, err := ferretdb.New(config)
	if err != nil {
		return err
	}

	front, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	go serveFront(ctx, front, sock, logger)

	logger.Info("ferretdb-stepline starting", "listen", listen, "backend", config.Handler, "url", backend,
		"pid", os.Getpid())
	if err = f.Run(ctx); err != nil {
		return err
	}
	logger.Info("ferretdb-stepline stopped")
	return nil
}
