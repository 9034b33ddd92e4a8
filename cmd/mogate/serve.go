package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/mogate/mogate/adapters/registry"
	"github.com/mogate/mogate/cmd/mogate/app"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/gateway"
	"github.com/mogate/mogate/matcher/wal"
)

// drainFor bounds how long in-flight requests may take to finish once the
// listener stops accepting (docs/operations.md). The systemd unit's
// TimeoutStopSec must exceed shutdown_delay plus this.
const drainFor = 10 * time.Second

func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (none: dev mode)")
	listen := fs.String("listen", "", "dev mode listen address (with --config: set listen in the file)")
	dataDir := fs.String("data-dir", "./mogate-data", "dev mode data directory (with --config: set data_dir in the file)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Signals that come while the state is recovered wait for the server.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var cfg config.Config
	var creds config.DevCredentials
	var err error
	dir := *dataDir
	if *cfgPath != "" {
		var conflicts []error
		fs.Visit(func(f *flag.Flag) {
			if key := map[string]string{"listen": "listen", "data-dir": "data_dir"}[f.Name]; key != "" {
				conflicts = append(conflicts, usageErr("--%s cannot be used with --config: the file is the one source; set %s there", f.Name, key))
			}
		})
		if len(conflicts) > 0 {
			fs.Usage()
			return usageError{errors.Join(conflicts...)}
		}
		if cfg, err = registry.Load(*cfgPath); err != nil {
			return err
		}
		dir = cfg.DataDir
	}
	// One process owns data_dir: lock it before anything there is read,
	// created or recovered (dev credentials, snapshot, log).
	if *cfgPath == "" || cfg.Store == "memory" {
		unlock, err := wal.LockDir(dir)
		if err != nil {
			return err
		}
		defer func() { _ = unlock() }()
	}
	if *cfgPath == "" {
		if cfg, creds, err = config.Dev(dir, true); err != nil {
			return err
		}
		if *listen != "" {
			cfg.Listen, cfg.PublicURL = *listen, "http://"+*listen
		}
	}
	level := new(slog.LevelVar)
	level.Set(gateway.LogLevel(cfg.LogLevel))
	log := slog.New(logHandler(stderr, level, cfg.Dev))
	if n, ok := schedulerSlots(cfg.Store, os.LookupEnv, runtime.GOMAXPROCS(0)); ok {
		prev := runtime.GOMAXPROCS(n)
		defer runtime.GOMAXPROCS(prev) // a process that serves again (tests) starts from the same
		log.Info("scheduler slots: one more than the CPUs, for the log's fsync (set GOMAXPROCS to choose)", "gomaxprocs", n)
	}
	srv, _, err := app.New(gateway.Options{Config: cfg, Logger: log, Level: level, Version: version}, false)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		how := "--listen"
		if *cfgPath != "" {
			how = "listen: in " + *cfgPath
		}
		return errors.Join(inUse(err, cfg.Listen, how), srv.Close())
	}
	if cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			ln.Close()
			return errors.Join(inUse(err, cfg.AdminListen, "admin_listen: in "+*cfgPath), srv.Close())
		}
		stopAdmin := srv.ServeAdmin(aln)
		defer func() { _ = stopAdmin() }()
		log.Info("admin listening", "addr", aln.Addr().String(), "serves", "/metrics")
	}
	if cfg.Dev {
		printDevBanner(stdout, cfg, creds)
		forget, err := recordDevAddress(dir, "http://"+ln.Addr().String())
		if err != nil {
			return errors.Join(err, srv.Close())
		}
		defer forget()
	}
	log.Info("mogate listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "providers", len(cfg.Providers), "numbers", len(cfg.Numbers), "version", version)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go handleSignals(sigs, srv, log, *cfgPath, cfg.ShutdownDelay, stop)
	err = srv.Serve(ctx, ln, drainFor)
	log.Info("mogate stopped")
	return err
}

// inUse explains a listen error of an address another process holds, and
// how to choose another (the flag of dev mode, or the key of the file).
func inUse(err error, addr, how string) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	return fmt.Errorf("%s is in use: is another mogate running? Choose another address with %s", addr, how)
}

// logHandler writes JSON lines in production, text in dev mode (read by a
// person). In JSON a time.Duration attribute becomes <key>_ms, in
// milliseconds: slog's own JSON writes it as integer nanoseconds.
func logHandler(w io.Writer, level slog.Leveler, dev bool) slog.Handler {
	if dev {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	}
	return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			return slog.Float64(a.Key+"_ms", float64(a.Value.Duration().Microseconds())/1000)
		}
		return a
	}})
}

// handleSignals reloads the configuration on SIGHUP and stops the server
// on SIGTERM or SIGINT (by calling stop). SIGTERM first turns /readyz 503
// for delay, while every request is still served, so that a load balancer
// stops sending new ones before the listener closes; SIGINT (Ctrl-C), or a
// second signal during the delay, stops at once.
func handleSignals(sigs <-chan os.Signal, srv *gateway.Server, log *slog.Logger, cfgPath string, delay time.Duration, stop func()) {
	var delayed <-chan time.Time
	for {
		select {
		case <-delayed:
			stop()
			return
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				reload(srv, log, cfgPath)
			case sig == syscall.SIGTERM && delayed == nil && delay > 0:
				log.Info("SIGTERM: /readyz answers 503, then the listener closes", "shutdown_delay", delay)
				srv.Drain()
				delayed = time.After(delay)
			default:
				log.Info("stopping", "signal", sig.String())
				stop()
				return
			}
		}
	}
}

// reload applies the file's api_keys, numbers, limits and log_level; an
// invalid file is logged and the running configuration kept.
func reload(srv *gateway.Server, log *slog.Logger, cfgPath string) {
	if cfgPath == "" {
		log.Warn("SIGHUP: dev mode has no configuration file to reload")
		return
	}
	cfg, err := registry.Load(cfgPath)
	if err == nil {
		err = srv.Reload(cfg)
	} else {
		srv.ReloadFailed()
	}
	if err != nil {
		log.Error("SIGHUP: configuration not reloaded; the running one is kept", "file", cfgPath, "err", err)
	}
}
