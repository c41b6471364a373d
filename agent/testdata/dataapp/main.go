// Command dataapp is the app of the persistent-data end-to-end test: it
// keeps small files in the data set its release gets as $DATA_NOTES.
//
//	GET /up            200 "ok"
//	GET /version       the version set at build time (-X main.version=v2)
//	GET /dir           $DATA_NOTES
//	PUT /notes/{key}   writes the body (at most 4 KiB) to $DATA_NOTES/{key}
//	GET /notes/{key}   reads it back; 404 when there is none
//
// Keys are 1 to 32 lowercase letters or digits. It listens on $ADDR and
// stops gracefully on SIGTERM.
package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

var version = "dev"

var keyRE = regexp.MustCompile(`^[a-z0-9]{1,32}$`)

func main() {
	dir := os.Getenv("DATA_NOTES")
	if dir == "" {
		log.Fatal("DATA_NOTES is not set")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /up", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, version+"\n") })
	mux.HandleFunc("GET /dir", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, dir) })
	mux.HandleFunc("PUT /notes/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if !keyRE.MatchString(key) {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, key), b, 0o644)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /notes/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if !keyRE.MatchString(key) {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, key))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			http.NotFound(w, r)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			w.Write(b)
		}
	})
	srv := &http.Server{Addr: os.Getenv("ADDR"), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Printf("dataapp %s listening on %s, data in %s", version, srv.Addr, dir)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
