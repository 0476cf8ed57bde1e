package module

import (
	"os"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/transports"
)

func presence(online bool, seq uint64) transports.Presence {
	return transports.Presence{Online: online, Seq: seq, At: time.Now(), Reason: "test"}
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, s string) {
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
