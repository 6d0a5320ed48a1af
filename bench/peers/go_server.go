// The goroutine-per-connection peer of bench/claims.sh: Go's net/http.
//
//	go_server -port PORT
//
//	GET /get       200 {"ok":true}
//	GET /delay/S   200 {"ok":true} after S seconds (time.Sleep, at most 10)
//
// Listens on 127.0.0.1 only. GOMAXPROCS follows the CPUs it may run on:
// pinned to one CPU by claims.sh, it is 1 (one OS thread runs Go code).
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

var ok = []byte("{\"ok\":true}\n")

func answer(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(ok)
}

func main() {
	port := flag.Int("port", 0, "listen on 127.0.0.1:PORT")
	flag.Parse()
	if *port <= 0 {
		fmt.Fprintln(os.Stderr, "usage: go_server -port PORT")
		os.Exit(2)
	}
	http.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) { answer(w) })
	http.HandleFunc("/delay/", func(w http.ResponseWriter, r *http.Request) {
		s, err := strconv.ParseFloat(strings.TrimPrefix(r.URL.Path, "/delay/"), 64)
		if err != nil || s < 0 || s > 10 {
			http.Error(w, "{\"error\":\"bad delay\"}", http.StatusBadRequest)
			return
		}
		time.Sleep(time.Duration(s * float64(time.Second)))
		answer(w)
	})
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *port), IdleTimeout: 75 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "go_server:", err)
		os.Exit(1)
	}
}
