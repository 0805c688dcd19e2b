package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Series is one line of a Chart.
type Series struct {
	Name   string
	Points [][2]float64 // (x, y), drawn in the given order
}

// Chart is a line chart rendered as a standalone SVG document by WriteSVG.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	// HLine, when positive, draws a dashed horizontal reference line at
	// that y (e.g. a latency objective), labelled HLineLabel.
	HLine      float64
	HLineLabel string
}

const (
	svgW, svgH                        = 640, 360
	padL, padR, padT, padB            = 70, 20, 40, 50
	plotW, plotH                      = svgW - padL - padR, svgH - padT - padB
	legendRow                         = 16
	fontAttrs                         = `font-family="sans-serif" font-size="12"`
	axisColor, gridColor, objectColor = "#333", "#ddd", "#c00"
)

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"}

// WriteSVG renders c. Axes start at zero (or the data minimum, if
// negative) and end at a rounded maximum; ticks are 1, 2 or 5 times a power
// of ten. A chart without points renders its frame and a note.
func (c *Chart) WriteSVG(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-family="sans-serif" font-size="14" font-weight="bold">%s</text>`+"\n", padL, esc(c.Title))

	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	n := 0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if math.IsNaN(p[0]) || math.IsNaN(p[1]) || math.IsInf(p[0], 0) || math.IsInf(p[1], 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, p[0]), math.Max(xmax, p[0])
			ymin, ymax = math.Min(ymin, p[1]), math.Max(ymax, p[1])
			n++
		}
	}
	if c.HLine > 0 {
		ymax = math.Max(ymax, c.HLine)
		ymin = math.Min(ymin, c.HLine)
	}
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" %s>no data</text>`+"\n", padL+plotW/2-20, padT+plotH/2, fontAttrs)
		b.WriteString("</svg>\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	xmin, xmax = math.Min(xmin, 0), niceCeil(xmax)
	ymin, ymax = math.Min(ymin, 0), niceCeil(ymax)
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	px := func(x float64) float64 { return padL + (x-xmin)/(xmax-xmin)*plotW }
	py := func(y float64) float64 { return padT + plotH - (y-ymin)/(ymax-ymin)*plotH }

	// Grid and ticks.
	for _, t := range ticks(ymin, ymax) {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", padL, y, padL+plotW, y, gridColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" %s text-anchor="end">%s</text>`+"\n", padL-6, y+4, fontAttrs, fmtTick(t))
	}
	for _, t := range ticks(xmin, xmax) {
		x := px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, padT, x, padT+plotH, gridColor)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" %s text-anchor="middle">%s</text>`+"\n", x, padT+plotH+16, fontAttrs, fmtTick(t))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", padL, padT, plotW, plotH, axisColor)
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s text-anchor="middle">%s</text>`+"\n", padL+plotW/2, svgH-10, fontAttrs, esc(c.XLabel))
	fmt.Fprintf(&b, `<text x="16" y="%d" %s text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>`+"\n", padT+plotH/2, fontAttrs, padT+plotH/2, esc(c.YLabel))

	if c.HLine > 0 {
		y := py(c.HLine)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>`+"\n", padL, y, padL+plotW, y, objectColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" %s fill="%s" text-anchor="end">%s</text>`+"\n", padL+plotW-4, y-4, fontAttrs, objectColor, esc(c.HLineLabel))
	}

	for i, s := range c.Series {
		color := palette[i%len(palette)]
		var pts []string
		for _, p := range s.Points {
			if math.IsNaN(p[0]) || math.IsNaN(p[1]) || math.IsInf(p[0], 0) || math.IsInf(p[1], 0) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
		}
		for _, p := range pts {
			xy := strings.SplitN(p, ",", 2)
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], color)
		}
		ly := padT + 8 + i*legendRow
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/>`+"\n", padL+10, ly, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" %s>%s</text>`+"\n", padL+26, ly+9, fontAttrs, esc(s.Name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v > 0 up to 1, 2, 2.5, 5 or 10 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// ticks returns 4 to 10 evenly spaced values covering [lo, hi].
func ticks(lo, hi float64) []float64 {
	span := hi - lo
	if span <= 0 {
		return []float64{lo}
	}
	step := math.Pow(10, math.Floor(math.Log10(span)))
	for span/step < 4 {
		step /= 2
	}
	for span/step > 10 {
		step *= 2
	}
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi+step*1e-9; t += step {
		out = append(out, t)
	}
	return out
}

func fmtTick(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func esc(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	return r.Replace(s)
}

// Bar is one bar of a BarChart.
type Bar struct {
	Label string
	Value float64
}

// BarChart is a vertical bar chart rendered as a standalone SVG document
// by WriteSVG: one bar per item, its value printed above it.
type BarChart struct {
	Title, YLabel string
	Bars          []Bar
	// HLine, when positive, draws a dashed horizontal reference line at
	// that value (e.g. a target ratio), labelled HLineLabel.
	HLine      float64
	HLineLabel string
}

// WriteSVG renders c. The axis starts at zero and ends at a rounded
// maximum; labels under the bars are slanted when they would not fit.
func (c *BarChart) WriteSVG(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-family="sans-serif" font-size="14" font-weight="bold">%s</text>`+"\n", padL, esc(c.Title))
	ymax := c.HLine
	n := 0
	for _, bar := range c.Bars {
		if math.IsNaN(bar.Value) || math.IsInf(bar.Value, 0) || bar.Value < 0 {
			continue
		}
		ymax = math.Max(ymax, bar.Value)
		n++
	}
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" %s>no data</text>`+"\n", padL+plotW/2-20, padT+plotH/2, fontAttrs)
		b.WriteString("</svg>\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	ymax = niceCeil(ymax)
	if ymax <= 0 {
		ymax = 1
	}
	py := func(y float64) float64 { return padT + plotH - y/ymax*plotH }
	for _, t := range ticks(0, ymax) {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", padL, y, padL+plotW, y, gridColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" %s text-anchor="end">%s</text>`+"\n", padL-6, y+4, fontAttrs, fmtTick(t))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", padL, padT, plotW, plotH, axisColor)
	fmt.Fprintf(&b, `<text x="16" y="%d" %s text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>`+"\n", padT+plotH/2, fontAttrs, padT+plotH/2, esc(c.YLabel))
	slot := float64(plotW) / float64(len(c.Bars))
	width := slot * 0.6
	slant := false
	for _, bar := range c.Bars {
		if float64(len(bar.Label))*7 > slot {
			slant = true
		}
	}
	for i, bar := range c.Bars {
		x := padL + slot*float64(i) + (slot-width)/2
		cx := x + width/2
		if !(math.IsNaN(bar.Value) || math.IsInf(bar.Value, 0) || bar.Value < 0) {
			y := py(bar.Value)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, width, padT+plotH-y, palette[0])
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" %s text-anchor="middle">%s</text>`+"\n", cx, y-4, fontAttrs, strconv.FormatFloat(bar.Value, 'f', 2, 64))
		}
		ly := padT + plotH + 16
		if slant {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" %s text-anchor="end" transform="rotate(-20 %.1f %d)">%s</text>`+"\n", cx, ly, fontAttrs, cx, ly, esc(bar.Label))
		} else {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" %s text-anchor="middle">%s</text>`+"\n", cx, ly, fontAttrs, esc(bar.Label))
		}
	}
	if c.HLine > 0 {
		y := py(c.HLine)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>`+"\n", padL, y, padL+plotW, y, objectColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" %s fill="%s" text-anchor="end">%s</text>`+"\n", padL+plotW-4, y-4, fontAttrs, objectColor, esc(c.HLineLabel))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
