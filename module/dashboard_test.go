package module

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestDashboardUsesRealMetrics: every metric the Grafana dashboard and the
// operations doc name exists in the module's registry.
func TestDashboardUsesRealMetrics(t *testing.T) {
	m := newMetrics()
	// touch the vectors so Gather reports them
	m.commands.WithLabelValues("p", "done")
	m.latency.WithLabelValues("done")
	m.queueDropped.WithLabelValues("message")
	m.telemetryIn.WithLabelValues("mqtt")
	m.telemetryDropped.WithLabelValues("queue_full")
	m.decodeErrors.WithLabelValues("mqtt")
	m.linkUp.WithLabelValues("mqtt")
	m.messageStatus.WithLabelValues("delivered")
	m.reloads.WithLabelValues("ok")
	m.panics.WithLabelValues("worker")
	m.commandsAccepted.WithLabelValues("p")
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		have[f.GetName()] = f
	}
	re := regexp.MustCompile(`mesibo_iot_[a-z_]+`)
	for _, file := range []string{"../docs/grafana-dashboard.json", "../docs/operations.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(file, ".json") {
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
		}
		for _, name := range re.FindAllString(string(b), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if _, ok := have[base]; !ok && !strings.HasSuffix(base, "_") {
				t.Errorf("%s names %s, which the module does not export", file, name)
			}
		}
	}
}
