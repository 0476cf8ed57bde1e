package module

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite generated parts of docs/configuration.md")

const configDoc = "../docs/configuration.md"

func keysTable() string {
	var b strings.Builder
	b.WriteString("| key | default | allowed | what it does |\n|---|---|---|---|\n")
	for _, k := range ConfigKeys() {
		def := k.Default
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", k.Name, def, k.Allowed, k.Doc)
	}
	return b.String()
}

func TestConfigurationDocMatchesCode(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)<!-- keys:begin -->\n(.*?)<!-- keys:end -->`)
	m := re.FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/configuration.md lacks the keys:begin/keys:end markers")
	}
	want := keysTable()
	if string(m[1]) != want {
		if *update {
			out := re.ReplaceAll(doc, []byte("<!-- keys:begin -->\n"+want+"<!-- keys:end -->"))
			if err := os.WriteFile(configDoc, out, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("the key table in docs/configuration.md is out of date; run go test ./module -run TestConfigurationDoc -update\nwant:\n%s", want)
	}
}

// TestDocumentedDefaultsAreTheDefaults: writing each documented default in
// mesibo.conf gives the same configuration as leaving the key out.
func TestDocumentedDefaultsAreTheDefaults(t *testing.T) {
	for _, k := range ConfigKeys() {
		if k.Default == "" {
			continue
		}
		got, err := ParseConfig([]ConfigItem{{k.Name, k.Default}})
		if err != nil {
			t.Fatalf("%s = %s: %v", k.Name, k.Default, err)
		}
		if !reflect.DeepEqual(got, DefaultConfig()) {
			t.Fatalf("%s = %s does not give the default configuration:\n got %+v\nwant %+v", k.Name, k.Default, got, DefaultConfig())
		}
	}
}

func TestSampleConfigurationLoads(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- sample:begin -->\n```\n(.*?)```\n<!-- sample:end -->")
	m := re.FindSubmatch(doc)
	if m == nil {
		t.Fatal("no sample block in docs/configuration.md")
	}
	var items []ConfigItem
	for _, line := range strings.Split(string(m[1]), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "module") || line == "}" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("sample line %q is not key = value", line)
		}
		items = append(items, ConfigItem{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	cfg, err := ParseConfig(items)
	if err != nil {
		t.Fatalf("the documented sample does not load: %v", err)
	}
	if cfg.DevicesFile != "/etc/mesibo/iot/devices.yaml" || len(cfg.Admins) != 2 || cfg.Transport["mqtt_broker"] == "" {
		t.Fatalf("sample parsed to %+v", cfg)
	}
	for _, f := range transportConfigCheckers {
		if err := f(cfg); err != nil {
			t.Fatalf("the documented sample's transport keys do not load: %v", err)
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		item ConfigItem
		want string
	}{
		{ConfigItem{"adress", "x"}, `unknown key "adress"`},
		{ConfigItem{"queue_size", "0"}, "queue_size = \"0\": must be an integer from 1 to 10000"},
		{ConfigItem{"command_ttl", "forever"}, "command_ttl = \"forever\": must be a duration"},
		{ConfigItem{"rate_user", "fast"}, "rate_user = \"fast\": must be N/period"},
		{ConfigItem{"metrics_listen", "9469"}, "must be host:port"},
		{ConfigItem{"admins", "al ice"}, `"al ice" is not a valid address`},
	} {
		_, err := ParseConfig([]ConfigItem{tc.item})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%v: got %v, want %q", tc.item, err, tc.want)
		}
	}
}
