package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/fsnotify/fsnotify"
)

// reloadTriggers yields a reason each time the registry should be reloaded:
// on SIGHUP, and with --watch when the registry file changes. Reloading
// needs a registry file (not the single-model flags).
func reloadTriggers(ctx context.Context, f *serveFlags, log *slog.Logger) (<-chan string, func(), error) {
	out := make(chan string, 1)
	send := func(reason string) {
		select {
		case out <- reason:
		default: // a reload is already pending
		}
	}
	if f.config == "" {
		return out, func() {}, nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-hup:
				send("SIGHUP")
			case <-ctx.Done():
				return
			}
		}
	}()
	if !f.watch {
		return out, stop, nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("--watch: %w", err)
	}
	// Watch the folder: editors replace files rather than write them in place.
	abs, _ := filepath.Abs(f.config)
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		stop()
		return nil, nil, fmt.Errorf("--watch: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Close()
		var debounce <-chan time.Time
		for {
			select {
			case ev := <-w.Events:
				if filepath.Clean(ev.Name) == abs && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
					debounce = time.After(200 * time.Millisecond) // one reload per burst of writes
				}
			case err := <-w.Errors:
				log.Warn("watch", slog.Any("error", err))
			case <-debounce:
				send("file changed")
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, stop, nil
}

// reload builds the new registry's models and pools, swaps them in
// atomically, and closes the old registry once its requests have finished.
// A file that does not load keeps the registry in service as it is.
func reload(ctx context.Context, path string, current *config.Config, srv *gateway.Server, build func(*config.Config) (*gateway.Registry, error), reason string, log *slog.Logger) {
	start := time.Now()
	cfg, err := config.Load(path)
	if err == nil && !reflect.DeepEqual(cfg.Server, current.Server) {
		log.Warn("reload: server settings (port, limits, timeouts) take effect on restart only")
	}
	var reg *gateway.Registry
	if err == nil {
		reg, err = build(cfg)
	}
	if err != nil {
		log.Error("reload failed; keeping the registry in service", slog.String("reason", reason), slog.Any("error", err))
		return
	}
	reg.Start(ctx)
	old := srv.SetRegistry(reg)
	if old != nil {
		_ = old.Retire()
	}
	log.Info("reloaded", slog.String("reason", reason), slog.Int("models", len(reg.Names())), slog.Duration("took", time.Since(start)))
}
