package sim

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WriteOutputs writes <trace>-curves.csv (every run's curve and the mean
// curve per policy) and <trace>.png (the mean curves) into dir.
func WriteOutputs(dir, traceName string, runs []*Run, sums []Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	base := strings.TrimSuffix(traceName, filepath.Ext(traceName))
	if err := writeCSV(filepath.Join(dir, base+"-curves.csv"), runs, sums); err != nil {
		return err
	}
	return writePNG(filepath.Join(dir, base+".png"), traceName, sums)
}

func writeCSV(path string, runs []*Run, sums []Summary) error {
	var rows [][]string
	for _, s := range sums {
		for _, p := range s.Curve {
			rows = append(rows, []string{s.Policy, "mean", csvFloat(p.Arrived), csvFloat(p.Alloc)})
		}
	}
	for _, r := range runs {
		for _, p := range r.Curve {
			rows = append(rows, []string{r.Policy, strconv.FormatUint(r.Seed, 10), csvFloat(p.Arrived), csvFloat(p.Alloc)})
		}
	}
	return writeCSVFile(path, "curves CSV", []string{"policy", "seed", "arrived_pct", "alloc_pct"}, rows)
}

func writePNG(path, traceName string, sums []Summary) error {
	p := plot.New()
	p.Title.Text = "GPU allocation vs arrived demand: " + traceName
	p.X.Label.Text = "arrived GPU demand (% of capacity)"
	p.Y.Label.Text = "allocated GPU (% of capacity)"
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	ideal := plotter.NewFunction(func(x float64) float64 { return min(x, 100) })
	ideal.Color = color.Gray{Y: 160}
	ideal.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(ideal)
	p.Legend.Add("ideal", ideal)
	for i, s := range sums {
		pts := make(plotter.XYs, len(s.Curve))
		for j, c := range s.Curve {
			pts[j].X, pts[j].Y = c.Arrived, c.Alloc
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Policy, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (%.2f%%)", s.Policy, s.Mean130), l)
	}
	p.X.Min, p.X.Max = 0, 132
	p.Y.Min, p.Y.Max = 0, 102
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("save plot: %w", err)
	}
	return nil
}
