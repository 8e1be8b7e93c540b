// Command loadtester serves Flagger's load tester, its own handlers, gate storage and task
// runner from github.com/fluxcd/flagger/pkg/loadtester, on a loopback address only.
//
// Flagger's command (cmd/loadtester) listens on ":" + -port, that is on every interface, and
// its "/" runs shell commands for any caller; the tests must not open that to the network. So
// this command wires the same package the same way as Flagger's and lets
// loadtester.ListenAndServe register its handlers on http.DefaultServeMux, but serves that mux
// on -listen (a loopback address) itself. ListenAndServe is handed port "-1", which is no port:
// its own listen fails at once without binding anything, and the logger's fatal hook ends only
// that goroutine (runtime.Goexit) instead of the process.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"time"

	"github.com/fluxcd/flagger/pkg/loadtester"
	"github.com/fluxcd/flagger/pkg/logger"
	"github.com/fluxcd/flagger/pkg/signals"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const flaggerModule = "github.com/fluxcd/flagger"

func main() {
	listen := flag.String("listen", "127.0.0.1:9090", "Loopback address (host:port) to serve on.")
	logLevel := flag.String("log-level", "info", "Log level: debug, info, warn, error.")
	timeout := flag.Duration("timeout", time.Hour, "Load test exec timeout.")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Fatalf("-listen %q: not a loopback host:port", *listen)
	}
	sugared, err := logger.NewLoggerWithEncoding(*logLevel, "json")
	if err != nil {
		log.Fatalf("creating the logger: %v", err)
	}
	sugared = sugared.Desugar().WithOptions(zap.WithFatalHook(zapcore.WriteThenGoexit)).Sugar()
	defer sugared.Sync()

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listening on %s: %v", *listen, err)
	}

	stopCh := signals.SetupSignalHandler()
	taskRunner := loadtester.NewTaskRunner(sugared, *timeout)
	go taskRunner.Start(100*time.Millisecond, stopCh)
	gates := loadtester.NewGateStorage("in-memory")
	authorizer := loadtester.NewAuthorizer(nil)
	sugared.Infof("handing Flagger's ListenAndServe port -1: its own listen fails at once (the fatal line next), %s serves", *listen)
	go loadtester.ListenAndServe("-1", time.Minute, sugared, taskRunner, gates, authorizer, stopCh)
	if err := awaitRoutes("/healthz", "/gate/check", "/rollback/close", "/"); err != nil {
		log.Fatal(err)
	}

	server := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: time.Minute}
	go func() {
		if err := server.Serve(listener); err != http.ErrServerClosed {
			log.Fatalf("serving on %s: %v", *listen, err)
		}
	}()
	sugared.Infof("Flagger's load tester %s serving on %s", flaggerVersion(), listener.Addr())

	<-stopCh
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		sugared.Errorf("shutdown: %v", err)
	}
}

// awaitRoutes waits (bounded) until ListenAndServe, running in another goroutine, has
// registered each path on http.DefaultServeMux as a pattern of its own.
func awaitRoutes(paths ...string) error {
	for _, path := range paths {
		probe := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: path}, Host: "localhost"}
		registered := false
		for attempt := 0; attempt < 5000 && !registered; attempt++ {
			_, pattern := http.DefaultServeMux.Handler(probe)
			registered = pattern == path
			if !registered {
				time.Sleep(time.Millisecond)
			}
		}
		if !registered {
			return fmt.Errorf("flagger's load tester did not register %s within 5 s", path)
		}
	}
	return nil
}

func flaggerVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == flaggerModule {
				return dep.Version
			}
		}
	}
	fmt.Fprintln(os.Stderr, "no build info for", flaggerModule)
	return "(unknown version)"
}
