// Command demo runs mesibo-iot the way a mesibo server would: mesibo-host
// loads the filter module and mesibo_mod_iot.so from a mesibo.conf, and a
// scripted conversation shows what a person sees. It exits non-zero if any
// step of the script did not happen.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
)

func main() {
	build := flag.String("build", envOr("MESIBO_IOT_BUILD", "build"), "directory with mesibo-host and the modules")
	abi := flag.String("abi", "doc", "ABI revision the host emulates: doc, r2019 or r2020")
	flag.Parse()
	if err := run(*build, *abi); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type demo struct {
	h     *hostproc.Host
	ctx   context.Context
	msgID uint64
}

func run(build, abi string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conf := `# mesibo.conf of the demo: the profanity filter first, then mesibo-iot
module filter {
  blocked_words = darn
}
module iot {
  address = iot
  metrics_listen = off
}
`
	h, err := hostproc.Start(ctx, hostproc.Options{
		Binary: filepath.Join(build, "mesibo-host"), ModulesDir: build, ABI: abi, Conf: conf, LogLevel: 1,
	})
	if err != nil {
		return err
	}
	defer h.Kill()
	d := &demo{h: h, ctx: ctx, msgID: 100}
	fmt.Printf("mesibo-host is running with the filter and mesibo-iot (ABI %s).\n\n", abi)

	steps := []func() error{
		func() error { return d.login("alice") },
		func() error { return d.chat("alice", "iot", "ping", "pong mesibo-iot") },
		func() error { return d.chat("alice", "iot", "help", "Commands:") },
		func() error { return d.blocked("alice", "bob", "what a darn day") },
		func() error { return d.offlineThenLogin("alice", "bob", "see you at the lab") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			fmt.Println("\n--- host transcript ---")
			fmt.Print(h.Transcript())
			return err
		}
	}
	if err := h.Quit(ctx); err != nil {
		return fmt.Errorf("host exit: %w", err)
	}
	fmt.Println("\nAll demo steps happened. Next: `make test`, and README.md for a real mesibo server.")
	return nil
}

func (d *demo) login(user string) error {
	fmt.Printf("* %s logs in\n", user)
	return d.h.Login(user)
}

func (d *demo) next() uint64 { d.msgID++; return d.msgID }

func (d *demo) wait(what string, pred func(hostproc.Event) bool) (hostproc.Event, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	ev, err := d.h.WaitFor(ctx, pred)
	if err != nil {
		return ev, fmt.Errorf("%s did not happen: %w", what, err)
	}
	return ev, nil
}

func (d *demo) chat(from, to, text, want string) error {
	id := d.next()
	fmt.Printf("%s → %s: %s\n", from, to, text)
	d.h.Msg(from, to, id, text)
	ev, err := d.wait("the answer to "+text, func(e hostproc.Event) bool {
		return e.Kind == "deliver" && e.Arg(0) == from && e.Field("refid") == fmt.Sprint(id)
	})
	if err != nil {
		return err
	}
	fmt.Printf("%s → %s: %s\n", to, from, indent(ev.Text))
	if !strings.Contains(ev.Text, want) {
		return fmt.Errorf("answer to %q lacks %q", text, want)
	}
	return nil
}

func (d *demo) blocked(from, to, text string) error {
	id := d.next()
	fmt.Printf("%s → %s: %s\n", from, to, text)
	d.h.Msg(from, to, id, text)
	ev, err := d.wait("the filter", func(e hostproc.Event) bool {
		return e.Kind == "decision" && e.Field("id") == fmt.Sprint(id) && e.Arg(0) == "filter"
	})
	if err != nil {
		return err
	}
	if ev.Field("result") != "CONSUMED" {
		return fmt.Errorf("the filter did not block %q", text)
	}
	fmt.Printf("  (the filter module consumed it; %s never sees it)\n", to)
	return nil
}

func (d *demo) offlineThenLogin(from, to, text string) error {
	id := d.next()
	fmt.Printf("%s → %s: %s   (%s is offline)\n", from, to, text, to)
	d.h.Msg(from, to, id, text)
	if _, err := d.wait("queueing", func(e hostproc.Event) bool { return e.Kind == "queued" && e.Field("id") == fmt.Sprint(id) }); err != nil {
		return err
	}
	fmt.Printf("  (queued until %s logs in)\n", to)
	d.login(to)
	ev, err := d.wait("delivery on login", func(e hostproc.Event) bool {
		return e.Kind == "deliver" && e.Arg(0) == to && e.Field("id") == fmt.Sprint(id)
	})
	if err != nil {
		return err
	}
	fmt.Printf("%s receives from %s: %s\n", to, from, ev.Text)
	return nil
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }
