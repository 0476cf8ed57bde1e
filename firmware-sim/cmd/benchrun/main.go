// Command benchrun runs mesibo-iot's benchmarks, each with its baseline in
// the same run, and writes docs/benchmarks.md and the plots in docs/bench/
// (`make bench`; `make bench-short` for the quick version).
//
//	go run ./firmware-sim/cmd/benchrun [-short] [-only pass,mqtt] [-doc docs/benchmarks.md] [-timeout 60m]
//
// Without -doc it prints the summary table and writes nothing in the
// repository (plots go to a temporary directory). It needs `make module
// host` first, and Mosquitto (/usr/sbin/mosquitto) for the MQTT, accept,
// PASS and scale benchmarks.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mesibo-iot/mesibo-iot/firmware-sim/benchrun"
)

func main() {
	short := flag.Bool("short", false, "the quick version of the suite (under 2 minutes)")
	only := flag.String("only", "", "comma-separated benchmarks to run: "+strings.Join(benchrun.Names, ","))
	doc := flag.String("doc", "", "write the report to this Markdown file (plots next to it in bench/)")
	plots := flag.String("plots", "", "directory for the plots (default: bench/ next to -doc)")
	build := flag.String("build", "", "directory with mesibo-host and the modules (default: $MESIBO_IOT_BUILD or build/)")
	timeout := flag.Duration("timeout", 0, "stop after this long (default 60m, 5m with -short)")
	quiet := flag.Bool("q", false, "no progress lines on stderr")
	flag.Parse()
	if *timeout == 0 {
		*timeout = 60 * time.Minute
		if *short {
			*timeout = 5 * time.Minute
		}
	}
	cfg := benchrun.Config{Short: *short, Doc: *doc, PlotDir: *plots, Build: *build}
	if cfg.Build == "" {
		cfg.Build = os.Getenv("MESIBO_IOT_BUILD")
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	if !*quiet {
		cfg.Log = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := benchrun.Run(ctx, cfg)
	if rep != nil {
		fmt.Printf("%-62s %-22s %-34s %7s  %s\n", "figure", "ours", "baseline", "ratio", "met")
		for _, f := range rep.Figures {
			ratio := "—"
			if f.Ratio > 0 {
				ratio = fmt.Sprintf("%.2f", f.Ratio)
			}
			fmt.Printf("%-62s %-22s %-34s %7s  %s\n", f.Name, f.Ours, f.Baseline, ratio, strings.Trim(f.Met, "*"))
		}
		fmt.Printf("took %v\n", rep.Duration.Round(time.Second))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}
