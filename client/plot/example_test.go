package plot_test

import (
	"bytes"
	"fmt"
	"image/png"
	"io"
	"math"

	"github.com/ipcluster/ipcluster/client/plot"
)

func Example() {
	// A 3 × 4 temperature field, one cell of it not yet computed.
	field := []float64{
		20, 21, 22, 23,
		21, 22, 23, 24,
		22, 23, 24, math.NaN(),
	}
	var buf bytes.Buffer
	if err := plot.HeatMap(&buf, field, 3, 4, plot.Options{Title: "T", Width: 200, Height: 120}); err != nil {
		fmt.Println(err)
		return
	}
	img, err := png.Decode(&buf)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(img.Bounds())
	// Output: (0,0)-(200,120)
}

func ExampleAuto() {
	err := plot.Auto(io.Discard, make([]float64, 8), []int{2, 2, 2}, plot.Options{})
	fmt.Println(err)
	// Output: plot: cannot draw data of shape [2 2 2]: want 1 or 2 dimensions, not 3
}
