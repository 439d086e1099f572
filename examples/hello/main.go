// Hello is IPython parallel's getting-started session in Go, against a
// running cluster:
//
//	ipcluster start -n 4 --daemon
//	go run ./examples/hello
//	ipcluster stop
//
// It greets every engine, then farms real work out with a load-balanced
// map: each engine compresses files with gzip through the sh builtin.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ipcluster/ipcluster/client"
	"github.com/ipcluster/ipcluster/engine"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The default profile's connection file, written by ipcluster start.
	c, err := client.Connect(ctx, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("engines:", c.IDs())

	res, err := c.Apply(ctx, "echo", []any{"Hello, World"}, client.Targets(client.All), client.Block)
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range c.IDs() {
		fmt.Printf("[%d] %v\n", id, res[id])
	}

	// A task farm: compress files on whichever engine is free.
	files, _ := filepath.Glob("/usr/bin/*")
	files = slices.DeleteFunc(files, func(f string) bool {
		st, err := os.Stat(f)
		return err != nil || !st.Mode().IsRegular() || st.Size() > 2<<20
	})
	files = files[:min(len(files), 32)]
	cmds := make([]string, len(files))
	for i, f := range files {
		cmds[i] = fmt.Sprintf("gzip -9 -c %q | wc -c", f)
	}
	start := time.Now()
	m, err := c.LoadBalancedView().Map(ctx, "sh", cmds, client.ChunkSize(1))
	if err != nil {
		log.Fatal(err)
	}
	out, err := client.Collect[engine.ShellResult](ctx, m)
	if err != nil {
		log.Fatal(err)
	}
	ran := m.Engines()
	fmt.Printf("\ncompressed %d files on %d engines in %.2f s:\n", len(files), len(c.IDs()), time.Since(start).Seconds())
	fmt.Printf("%-28s %10s %10s  %s\n", "file", "bytes", "gzip -9", "engine")
	perEngine := map[int]int{}
	for i, f := range files {
		st, _ := os.Stat(f)
		var gz int
		fmt.Sscan(out[i].Stdout, &gz)
		name := filepath.Base(f)
		if len(name) > 28 {
			name = name[:27] + "…"
		}
		fmt.Printf("%-28s %10d %10d  %d\n", name, st.Size(), gz, ran[i])
		perEngine[ran[i]]++
	}
	fmt.Println("\ntasks per engine:", perEngine)
}
