package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// ascii replaces what the bitmap font cannot draw.
var ascii = strings.NewReplacer("µ", "u", "×", "x", "≤", "<=", "≥", ">=", "–", "-")

// writeChart draws, for each row with a limit or an absolute target, a
// bar of ipcluster's performance relative to it (1.0: at the limit or
// target; more is better), with the target marked.
func writeChart(rep *Report, path string) error {
	type bar struct {
		label  string
		value  float64 // relative performance
		target float64 // where the target lies on the same scale, 0 if none
		ref    string
	}
	var bars []bar
	for _, r := range rep.Rows {
		if !r.Ours.ok() {
			continue
		}
		v := r.Ours.Median()
		label := fmt.Sprintf("%s, %s", r.Workload, r.Metric)
		switch {
		case r.Limit.ok():
			rel := v / r.Limit.Median()
			if !r.Higher {
				rel = 1 / rel
			}
			b := bar{label: label, value: rel, ref: "vs " + r.LimitOf}
			for _, t := range r.Targets {
				if t.Against == "limit" {
					b.target = t.Bound
					if !r.Higher {
						b.target = 1 / t.Bound
					}
				}
			}
			bars = append(bars, b)
		default:
			for _, t := range r.Targets {
				if t.Against == "" && t.Bound > 0 {
					rel := v / t.Bound
					if !r.Higher {
						rel = t.Bound / v
					}
					bars = append(bars, bar{label: label, value: rel, target: 1, ref: "vs target"})
				}
			}
		}
	}
	const (
		left, right, top, rowH, barH = 330, 40, 50, 28, 16
		width                        = 960
	)
	height := top + rowH*len(bars) + 50
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	maxV := 2.0 // bars beyond 3 are clipped and marked
	for _, b := range bars {
		maxV = max(maxV, min(b.value, 3)*1.1)
	}
	scale := float64(width-left-right) / maxV
	x := func(v float64) int { return left + int(min(v, maxV)*scale) }
	text := func(px, py int, s string, c color.Color) {
		d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(px, py)}
		d.DrawString(ascii.Replace(s))
	}
	gray := color.RGBA{150, 150, 150, 255}
	text(10, 20, fmt.Sprintf("ipcluster relative to the transport limit or the target (1.0 = at it; longer is better) - %s, %s run", rep.Date, rep.Mode), color.Black)
	text(10, 36, machineLine(rep.Machine), gray)
	for v := 0.0; v <= maxV; v += 0.5 {
		if int(v*2)%2 == 1 && maxV > 2.5 {
			continue
		}
		for py := top - 5; py < height-40; py++ {
			img.Set(x(v), py, color.RGBA{230, 230, 230, 255})
		}
		text(x(v)-8, height-28, fmt.Sprintf("%.1f", v), gray)
	}
	for py := top - 5; py < height-40; py++ {
		img.Set(x(1), py, color.Black)
	}
	for i, b := range bars {
		y := top + i*rowH
		text(10, y+12, b.label, color.Black)
		c := color.RGBA{46, 125, 50, 255}
		if b.target > 0 && b.value < b.target {
			c = color.RGBA{198, 40, 40, 255}
		}
		draw.Draw(img, image.Rect(left, y, x(b.value), y+barH), image.NewUniform(c), image.Point{}, draw.Src)
		label := fmt.Sprintf("%.2f %s", b.value, b.ref)
		if b.value > maxV {
			label = fmt.Sprintf(">> %.1f %s", b.value, b.ref)
		}
		text(min(x(b.value)+4, width-right-7*len(label)), y+12, label, color.Black)
		if b.target > 0 {
			for py := y - 2; py < y+barH+2; py++ {
				img.Set(x(b.target), py, color.RGBA{255, 143, 0, 255})
				img.Set(x(b.target)+1, py, color.RGBA{255, 143, 0, 255})
			}
		}
	}
	text(10, height-10, "green: target met; red: missed; orange tick: target; black line: 1.0", gray)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}
