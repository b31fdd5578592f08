// Command presenced runs one presenced node. With no flags it starts a
// single node on 127.0.0.1:7070 in open dev mode with data in ./data.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
)

// version is stamped by the linker: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cfg, err := LoadConfig(os.Args[1:], os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		WriteUsage(os.Stdout)
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "presenced:", err)
		os.Exit(2)
	}
	if cfg.ShowVersion {
		fmt.Println("presenced", version)
		return
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "presenced:", err)
		os.Exit(2)
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "presenced:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()
	setGCPercent(os.LookupEnv, log)

	// The first SIGINT/SIGTERM starts a graceful shutdown (clients are told
	// to reconnect elsewhere and stay present inside grace); a second one
	// exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		log.Info("signal received: shutting down gracefully (send again to exit now)", zap.String("signal", s.String()))
		cancel()
		<-sigs
		log.Warn("second signal: exiting now")
		os.Exit(1)
	}()

	if err := Run(ctx, cfg, log, nil); err != nil {
		log.Error("presenced stopped", zap.Error(err))
		os.Exit(1)
	}
}
