package plot

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var (
	low  = viridisAnchors[0]
	high = viridisAnchors[len(viridisAnchors)-1]
	mid  = viridis(0.5)
)

// decode decodes the PNG in b.
func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decoding the PNG written: %v", err)
	}
	return img
}

// rgbaAt returns the colour of img at p.
func rgbaAt(img image.Image, p image.Point) color.RGBA {
	return color.RGBAModel.Convert(img.At(p.X, p.Y)).(color.RGBA)
}

// grid returns a rows × cols array whose cell (r, c) is f(r, c).
func grid(rows, cols int, f func(r, c int) float64) []float64 {
	data := make([]float64, 0, rows*cols)
	for r := range rows {
		for c := range cols {
			data = append(data, f(r, c))
		}
	}
	return data
}

// cellPixel returns the pixel in the middle of the part of cells that
// cell (r, c) of a rows × cols array is drawn in.
func cellPixel(cells image.Rectangle, rows, cols, r, c int) image.Point {
	return image.Pt(
		cells.Min.X+(2*c+1)*cells.Dx()/(2*cols),
		cells.Min.Y+(2*r+1)*cells.Dy()/(2*rows),
	)
}

func TestHeatMapColours(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	type cell struct {
		r, c int
		want color.RGBA
	}
	tests := []struct {
		name       string
		data       []float64
		rows, cols int
		opts       Options
		cells      []cell
	}{
		{
			name: "ramp runs from the low end at the top left to the high end at the bottom right",
			data: []float64{0, 1, 2, 3}, rows: 2, cols: 2,
			cells: []cell{{0, 0, low}, {0, 1, viridis(1.0 / 3)}, {1, 0, viridis(2.0 / 3)}, {1, 1, high}},
		},
		{
			name: "row-major, row 0 at the top",
			data: []float64{0, 1, 2, 3, 4, 5}, rows: 2, cols: 3,
			cells: []cell{{0, 0, low}, {0, 2, viridis(0.4)}, {1, 0, viridis(0.6)}, {1, 2, high}},
		},
		{
			name: "NaN and Inf cells are grey and ignored for the range",
			data: []float64{nan, 1, inf, 3, math.Inf(-1), 2}, rows: 3, cols: 2,
			cells: []cell{{0, 0, missing}, {1, 0, missing}, {2, 0, missing}, {0, 1, low}, {1, 1, high}, {2, 1, mid}},
		},
		{
			name: "all-equal data is the middle colour",
			data: []float64{5, 5, 5, 5}, rows: 2, cols: 2,
			cells: []cell{{0, 0, mid}, {1, 1, mid}},
		},
		{
			name: "all-NaN data is grey",
			data: []float64{nan, nan}, rows: 1, cols: 2,
			cells: []cell{{0, 0, missing}, {0, 1, missing}},
		},
		{
			name: "Min and Max clamp",
			data: []float64{-10, 0, 5, 10}, rows: 2, cols: 2, opts: Options{Min: 0, Max: 5},
			cells: []cell{{0, 0, low}, {0, 1, low}, {1, 0, high}, {1, 1, high}},
		},
		{
			name: "the widest range does not overflow",
			data: []float64{-math.MaxFloat64, 0, math.MaxFloat64}, rows: 1, cols: 3,
			cells: []cell{{0, 0, low}, {0, 1, mid}, {0, 2, high}},
		},
		{
			name: "explicit size stretches the cells",
			data: []float64{0, 1, 2, 3}, rows: 2, cols: 2, opts: Options{Width: 300, Height: 100, Title: "stretched"},
			cells: []cell{{0, 0, low}, {1, 1, high}},
		},
		{
			name: "downsampling shows the mean of the cells a pixel covers",
			data: grid(1024, 1024, func(_, c int) float64 { return float64(c % 2 * 2) }), rows: 1024, cols: 1024,
			cells: []cell{{0, 0, mid}, {1023, 1023, mid}},
		},
		{
			name: "downsampling skips NaN and Inf cells",
			data: grid(1024, 1024, func(_, c int) float64 {
				return [...]float64{nan, 0, inf, 2}[c%4]
			}), rows: 1024, cols: 1024,
			cells: []cell{{0, 0, low}, {0, 2, high}, {0, 1, low}, {0, 3, high}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := HeatMap(&buf, tt.data, tt.rows, tt.cols, tt.opts); err != nil {
				t.Fatalf("HeatMap: %v", err)
			}
			img := decode(t, buf.Bytes())
			l, err := layoutHeatMap(tt.rows, tt.cols, tt.opts.span(tt.data), tt.opts)
			if err != nil {
				t.Fatalf("layoutHeatMap: %v", err)
			}
			if got := img.Bounds().Size(); got != l.size {
				t.Errorf("picture is %v, want %v", got, l.size)
			}
			for _, c := range tt.cells {
				p := cellPixel(l.cells, tt.rows, tt.cols, c.r, c.c)
				if got := rgbaAt(img, p); got != c.want {
					t.Errorf("cell (%d, %d) at %v is %v, want %v", c.r, c.c, p, got, c.want)
				}
			}
			if got := rgbaAt(img, l.bar.Min); got != high {
				t.Errorf("top of the colour bar is %v, want the high end %v", got, high)
			}
			if got := rgbaAt(img, image.Pt(l.bar.Min.X, l.bar.Max.Y-1)); got != low {
				t.Errorf("bottom of the colour bar is %v, want the low end %v", got, low)
			}
			for _, at := range []image.Point{l.hiAt, l.loAt} {
				label := image.Rectangle{Min: at, Max: at.Add(image.Pt(l.size.X, textHeight(l.scale)))}
				if !contains(img, label, ink) {
					t.Errorf("no label drawn in %v", label)
				}
			}
		})
	}
}

// contains reports whether any pixel of img in r has colour c.
func contains(img image.Image, r image.Rectangle, c color.RGBA) bool {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if rgbaAt(img, image.Pt(x, y)) == c {
				return true
			}
		}
	}
	return false
}

func TestLinesPixels(t *testing.T) {
	nan := math.NaN()
	blue, orange := seriesColours[0], seriesColours[1]
	type pixel struct {
		x, y float64 // data coordinates
		want color.RGBA
	}
	tests := []struct {
		name   string
		series [][]float64
		opts   Options
		pixels []pixel
	}{
		{
			name:   "a rising line joins its ends",
			series: [][]float64{{0, 1}},
			pixels: []pixel{{0, 0, blue}, {0.5, 0.5, blue}, {1, 1, blue}, {0, 1, background}, {1, 0, background}},
		},
		{
			name:   "each series has its own colour",
			series: [][]float64{{0, 0, 0}, {1, 1}},
			pixels: []pixel{{1, 0, blue}, {0.5, 1, orange}, {2, 1, background}},
		},
		{
			name:   "NaN leaves a gap and lone values are dots",
			series: [][]float64{{0, nan, 0}},
			opts:   Options{Min: -1, Max: 1},
			pixels: []pixel{{0, 0, blue}, {1, 0, background}, {2, 0, blue}},
		},
		{
			name:   "lines beyond Min and Max are clipped",
			series: [][]float64{{-5, 5}},
			opts:   Options{Min: -1, Max: 1, Title: "clipped"},
			pixels: []pixel{{0.5, 0, blue}, {0, -1, background}, {1, 1, background}},
		},
		{
			name:   "all-equal data runs along the middle",
			series: [][]float64{{7, 7, 7}},
			pixels: []pixel{{1, 7, blue}},
		},
		{
			name:   "a single value is a dot",
			series: [][]float64{{3}},
			pixels: []pixel{{0, 3, blue}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Lines(&buf, tt.series, tt.opts); err != nil {
				t.Fatalf("Lines: %v", err)
			}
			img := decode(t, buf.Bytes())
			l, err := layoutLines(longest(tt.series), tt.opts.span(tt.series...), tt.opts)
			if err != nil {
				t.Fatalf("layoutLines: %v", err)
			}
			for _, p := range tt.pixels {
				at := l.at(p.x, p.y)
				px := image.Pt(int(math.Round(at.x)), int(math.Round(at.y)))
				if got := rgbaAt(img, px); got != p.want {
					t.Errorf("(%g, %g) at %v is %v, want %v", p.x, p.y, px, got, p.want)
				}
			}
			axes := []image.Point{
				{l.plot.Min.X - 1, l.plot.Min.Y},     // top of the y axis
				{l.plot.Min.X - 1, l.plot.Max.Y - 1}, // bottom of the y axis
				{l.plot.Max.X - 1, l.plot.Max.Y},     // right end of the x axis
			}
			for _, p := range axes {
				if got := rgbaAt(img, p); got != ink {
					t.Errorf("axis pixel %v is %v, want %v", p, got, ink)
				}
			}
		})
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		name  string
		draw  func(io.Writer) error
		size  image.Point // of the picture; zero to skip
		cells image.Point // of a heat map's cell area; zero to skip
		rows  int
		cols  int
	}{
		{name: "line default", size: image.Pt(640, 400),
			draw: func(w io.Writer) error { return Lines(w, [][]float64{{1, 2}}, Options{}) }},
		{name: "line width only", size: image.Pt(300, 400),
			draw: func(w io.Writer) error { return Lines(w, [][]float64{{1, 2}}, Options{Width: 300}) }},
		{name: "line both", size: image.Pt(200, 100),
			draw: func(w io.Writer) error { return Lines(w, [][]float64{{1, 2}}, Options{Width: 200, Height: 100}) }},
		{name: "heat map both", size: image.Pt(300, 200),
			draw: func(w io.Writer) error { return HeatMap(w, make([]float64, 6), 2, 3, Options{Width: 300, Height: 200}) }},
		{name: "heat map 2x2 cells are upscaled 8 times", rows: 2, cols: 2, cells: image.Pt(16, 16)},
		{name: "heat map 64x32 cells are upscaled 8 times", rows: 64, cols: 32, cells: image.Pt(256, 512)},
		{name: "heat map 1x100 cells are upscaled 5 times", rows: 1, cols: 100, cells: image.Pt(500, 5)},
		{name: "heat map 512x300 cells are drawn 1:1", rows: 512, cols: 300, cells: image.Pt(300, 512)},
		{name: "heat map 1024x2048 is downsampled", rows: 1024, cols: 2048, cells: image.Pt(512, 256)},
		{name: "heat map 10000x1 keeps a pixel", rows: 10000, cols: 1, cells: image.Pt(1, 512)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.size
			if tt.rows > 0 {
				data := make([]float64, tt.rows*tt.cols)
				l, err := layoutHeatMap(tt.rows, tt.cols, spanOf(data), Options{})
				if err != nil {
					t.Fatalf("layoutHeatMap: %v", err)
				}
				if got := l.cells.Size(); got != tt.cells {
					t.Errorf("cell area is %v, want %v", got, tt.cells)
				}
				size = l.size
				tt.draw = func(w io.Writer) error { return HeatMap(w, data, tt.rows, tt.cols, Options{}) }
			}
			var buf bytes.Buffer
			if err := tt.draw(&buf); err != nil {
				t.Fatal(err)
			}
			if got := decode(t, buf.Bytes()).Bounds(); got != (image.Rectangle{Max: size}) {
				t.Errorf("picture bounds are %v, want %v", got, image.Rectangle{Max: size})
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		draw func(io.Writer) error
		want string
	}{
		{"heat map length", func(w io.Writer) error { return HeatMap(w, make([]float64, 5), 2, 3, Options{}) },
			"len(data) = 5, want rows*cols = 2*3"},
		{"heat map no rows", func(w io.Writer) error { return HeatMap(w, nil, 0, 3, Options{}) },
			"0 rows x 3 cols: rows and cols must be positive"},
		{"heat map negative cols", func(w io.Writer) error { return HeatMap(w, nil, 2, -1, Options{}) },
			"2 rows x -1 cols: rows and cols must be positive"},
		{"heat map Min > Max", func(w io.Writer) error { return HeatMap(w, []float64{1}, 1, 1, Options{Min: 2, Max: 1}) },
			"Min 2 is greater than Max 1"},
		{"heat map NaN Max", func(w io.Writer) error { return HeatMap(w, []float64{1}, 1, 1, Options{Max: math.NaN()}) },
			"Min 0 and Max NaN must be finite"},
		{"heat map negative width", func(w io.Writer) error { return HeatMap(w, []float64{1}, 1, 1, Options{Width: -1}) },
			"picture size -1x0 out of range"},
		{"heat map huge height", func(w io.Writer) error { return HeatMap(w, []float64{1}, 1, 1, Options{Height: 1 << 20}) },
			"picture size 0x1048576 out of range"},
		{"heat map too narrow", func(w io.Writer) error { return HeatMap(w, []float64{1}, 1, 1, Options{Width: 20}) },
			"too small for this heat map"},
		{"heat map too low", func(w io.Writer) error { return HeatMap(w, []float64{1}, 1, 1, Options{Height: 10}) },
			"too small for this heat map"},
		{"lines nil", func(w io.Writer) error { return Lines(w, nil, Options{}) },
			"no series to draw"},
		{"lines empty series", func(w io.Writer) error { return Lines(w, [][]float64{{1}, {}}, Options{}) },
			"series 1 is empty"},
		{"lines Min > Max", func(w io.Writer) error { return Lines(w, [][]float64{{1}}, Options{Min: 1, Max: -1}) },
			"Min 1 is greater than Max -1"},
		{"lines too small", func(w io.Writer) error { return Lines(w, [][]float64{{1}}, Options{Width: 20, Height: 20}) },
			"picture 20x20 is too small for this line plot"},
		{"auto 3-D", func(w io.Writer) error { return Auto(w, make([]float64, 8), []int{2, 2, 2}, Options{}) },
			"cannot draw data of shape [2 2 2]: want 1 or 2 dimensions, not 3"},
		{"auto 0-D", func(w io.Writer) error { return Auto(w, []float64{1}, []int{}, Options{}) },
			"shape []"},
		{"auto zero dimension", func(w io.Writer) error { return Auto(w, nil, []int{2, 0}, Options{}) },
			"shape [2 0] has a non-positive dimension"},
		{"auto 1-D length", func(w io.Writer) error { return Auto(w, make([]float64, 3), []int{4}, Options{}) },
			"len(data) = 3, want 4 for shape [4]"},
		{"auto 2-D length", func(w io.Writer) error { return Auto(w, make([]float64, 3), []int{2, 2}, Options{}) },
			"len(data) = 3, want rows*cols = 2*2"},
		{"auto nil shape no data", func(w io.Writer) error { return Auto(w, nil, nil, Options{}) },
			"series 0 is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := tt.draw(&buf)
			if err == nil {
				t.Fatalf("no error, want one saying %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "plot: ") {
				t.Errorf("error %q does not start with \"plot: \"", err)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written despite the error", buf.Len())
			}
		})
	}
}

func TestAutoPicksThePicture(t *testing.T) {
	data := []float64{0, 1, 2, 3, 4, 5}
	tests := []struct {
		name  string
		shape []int
		same  func(io.Writer) error
	}{
		{"nil shape is a line", nil, func(w io.Writer) error { return Lines(w, [][]float64{data}, Options{}) }},
		{"1-D is a line", []int{6}, func(w io.Writer) error { return Lines(w, [][]float64{data}, Options{}) }},
		{"2-D is a heat map", []int{2, 3}, func(w io.Writer) error { return HeatMap(w, data, 2, 3, Options{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got, want bytes.Buffer
			if err := Auto(&got, data, tt.shape, Options{}); err != nil {
				t.Fatalf("Auto: %v", err)
			}
			if err := tt.same(&want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Error("Auto drew a different picture")
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()

	t.Run("writes the picture", func(t *testing.T) {
		path := filepath.Join(dir, "T.png")
		if err := os.WriteFile(path, []byte("an older, longer file to truncate"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(path, []float64{0, 1, 2, 3}, []int{2, 2}, Options{}); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := HeatMap(&want, []float64{0, 1, 2, 3}, 2, 2, Options{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want.Bytes()) {
			t.Error("the file does not hold the heat map")
		}
	})

	t.Run("leaves the file alone if drawing fails", func(t *testing.T) {
		path := filepath.Join(dir, "kept.png")
		old := []byte("old picture")
		if err := os.WriteFile(path, old, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(path, []float64{1}, []int{1, 1, 1}, Options{}); err == nil {
			t.Fatal("no error for a 3-D shape")
		}
		if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, old) {
			t.Errorf("file now holds %q (%v), want %q", b, err, old)
		}
		missing := filepath.Join(dir, "never.png")
		if err := WriteFile(missing, nil, nil, Options{}); err == nil {
			t.Fatal("no error for empty data")
		}
		if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want the file not to exist", missing, err)
		}
	})

	t.Run("reports an unwritable path", func(t *testing.T) {
		sub := filepath.Join(dir, "subdir")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(sub, []float64{1, 2}, nil, Options{}); err == nil {
			t.Error("no error writing to a directory")
		}
		if _, err := os.Stat(sub); err != nil {
			t.Errorf("the directory is gone: %v", err)
		}
		if err := WriteFile(filepath.Join(dir, "no", "such", "dir.png"), []float64{1}, nil, Options{}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %v, want fs.ErrNotExist", err)
		}
	})
}

func TestViridis(t *testing.T) {
	tests := []struct {
		t    float64
		want color.RGBA
	}{
		{0, low},
		{-1, low},
		{math.NaN(), low},
		{1, high},
		{2, high},
		{1.0 / 15, viridisAnchors[1]},
		{0.5 / 15, color.RGBA{70, 14, 96, 255}}, // halfway between the first two anchors
	}
	for _, tt := range tests {
		if got := viridis(tt.t); got != tt.want {
			t.Errorf("viridis(%g) = %v, want %v", tt.t, got, tt.want)
		}
	}
	for i := range 100 {
		if c := viridis(float64(i) / 99); c == missing {
			t.Fatalf("viridis(%d/99) is the NaN grey", i)
		}
	}
}

func TestFont(t *testing.T) {
	for _, r := range "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,:-+=*/%_()[]<>!" {
		if g := glyphOf(r); g == glyphs[box] || g == (glyph{}) {
			t.Errorf("%q has no glyph", r)
		}
	}
	for _, tt := range []struct {
		r    rune
		want glyph
	}{
		{'e', glyphs['E']},
		{'z', glyphs['Z']},
		{' ', glyph{}},
		{'~', glyphs[box]},
		{'é', glyphs[box]},
		{-1, glyphs[box]},
	} {
		if got := glyphOf(tt.r); got != tt.want {
			t.Errorf("glyphOf(%q) = %v, want %v", tt.r, got, tt.want)
		}
	}
}

func TestDrawText(t *testing.T) {
	const scale = 2
	img := newCanvas(image.Pt(20, 20))
	drawText(img, image.Pt(1, 1), "1 ", scale, ink)
	var got []string
	for y := 1; y < 1+textHeight(scale); y += scale {
		var row strings.Builder
		for x := 1; x < 1+textWidth("1 ", scale); x += scale {
			if img.RGBAAt(x, y) == ink && img.RGBAAt(x+1, y+1) == ink {
				row.WriteByte('#')
			} else {
				row.WriteByte('.')
			}
		}
		got = append(got, row.String())
	}
	want := []string{
		"..#........",
		".##........",
		"..#........",
		"..#........",
		"..#........",
		"..#........",
		".###.......",
	}
	if !slices.Equal(got, want) {
		t.Errorf("\"1 \" drawn as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := textWidth("", scale); n != 0 {
		t.Errorf("textWidth(\"\") = %d, want 0", n)
	}
}

func TestClipSegment(t *testing.T) {
	r := image.Rect(0, 0, 11, 11) // pixel centres 0..10
	tests := []struct {
		name   string
		p, q   point
		ok     bool
		pc, qc point
	}{
		{"inside", point{1, 1}, point{9, 9}, true, point{1, 1}, point{9, 9}},
		{"across", point{-10, 5}, point{20, 5}, true, point{0, 5}, point{10, 5}},
		{"diagonal out of both corners", point{-5, -5}, point{15, 15}, true, point{0, 0}, point{10, 10}},
		{"above", point{-5, -1}, point{15, -1}, false, point{}, point{}},
		{"misses a corner", point{8, -5}, point{16, 3}, false, point{}, point{}},
		{"a dot inside", point{3, 4}, point{3, 4}, true, point{3, 4}, point{3, 4}},
		{"a dot outside", point{3, 40}, point{3, 40}, false, point{}, point{}},
		{"far off", point{0, -1e9}, point{10, 1e9}, true, point{4.99999995, 0}, point{5.00000005, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc, qc, ok := clipSegment(tt.p, tt.q, r)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && (!near(pc, tt.pc) || !near(qc, tt.qc)) {
				t.Errorf("clipped to %v–%v, want %v–%v", pc, qc, tt.pc, tt.qc)
			}
		})
	}
}

// near reports whether p and q are within 1e-6 pixels of each other.
func near(p, q point) bool {
	return math.Abs(p.x-q.x) < 1e-6 && math.Abs(p.y-q.y) < 1e-6
}

func BenchmarkHeatMap4096(b *testing.B) {
	const n = 4096
	data := grid(n, n, func(r, c int) float64 { return math.Sin(float64(r)/50) * math.Cos(float64(c)/70) })
	for b.Loop() {
		if err := HeatMap(io.Discard, data, n, n, Options{Title: "4096 x 4096"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLines(b *testing.B) {
	series := make([][]float64, 4)
	for i := range series {
		series[i] = make([]float64, 10000)
		for j := range series[i] {
			series[i][j] = math.Sin(float64(i*j) / 1000)
		}
	}
	for b.Loop() {
		if err := Lines(io.Discard, series, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
