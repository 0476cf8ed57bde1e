package benchrun

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// cdfLine is one latency sample (sorted, µs) drawn as a CDF.
type cdfLine struct {
	Name string
	US   []float64
}

// plotCDF draws latency CDFs on a log time axis into a PNG.
func plotCDF(path, title string, lines []cdfLine) error {
	if len(lines) == 0 {
		return fmt.Errorf("plot %s: no data", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "latency (µs, log scale)"
	p.Y.Label.Text = "fraction of requests ≤ latency"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), 0.0
	for i, l := range lines {
		if len(l.US) == 0 {
			continue
		}
		// at most ~2000 points per line
		stride := max(1, len(l.US)/2000)
		var xys plotter.XYs
		for k := 0; k < len(l.US); k += stride {
			x := math.Max(l.US[k], 0.1)
			xys = append(xys, plotter.XY{X: x, Y: float64(k+1) / float64(len(l.US))})
		}
		last := l.US[len(l.US)-1]
		xys = append(xys, plotter.XY{X: math.Max(last, 0.1), Y: 1})
		lo, hi = math.Min(lo, math.Max(l.US[0], 0.1)), math.Max(hi, last)
		ln, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		ln.Color = plotutil.Color(i / 2)
		if i%2 == 1 {
			ln.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		ln.Width = vg.Points(1.5)
		p.Add(ln)
		p.Legend.Add(fmt.Sprintf("%s (n=%d)", l.Name, len(l.US)), ln)
	}
	p.X.Min, p.X.Max = lo*0.8, hi*1.25
	return p.Save(7*vg.Inch, 4.2*vg.Inch, path)
}
