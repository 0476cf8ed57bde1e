package itest

import (
	"context"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
)

func quit(h *hostproc.Host) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.Quit(ctx)
}
