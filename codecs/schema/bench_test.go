package schema

import "testing"

func BenchmarkParse(b *testing.B) {
	p := RoverProfile()
	opts := ParseOptions{ExtraVerbs: ReservedVerbs}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse("move 10cm speed=0.5", opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseConverted(b *testing.B) {
	p := RoverProfile()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse("move 0.1m speed=0.5", ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseJSON(b *testing.B) {
	p := RoverProfile()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(`{"cmd":"move","args":{"distance":10,"speed":0.5}}`, ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseUnknownVerb(b *testing.B) {
	p := RoverProfile()
	opts := ParseOptions{ExtraVerbs: ReservedVerbs}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse("mvoe 10cm", opts); err == nil {
			b.Fatal("no error")
		}
	}
}

func BenchmarkParseCondition(b *testing.B) {
	p := watchProfile(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCondition(p, "obstacle < 0.2m"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseProfile(b *testing.B) {
	data := []byte(RoverProfileYAML)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseProfile("rover.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
