package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ipcluster/ipcluster/client"
)

// The getting-started session of IPython parallel: connect with the
// default profile's connection file (written by `ipcluster start -n 4`)
// and run a function on every engine.
func Example() {
	ctx := context.Background()
	c, err := client.Connect(ctx, client.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Println(c.IDs())

	res, err := c.Apply(ctx, "echo", []any{"Hello, World"}, client.Targets(client.All), client.Block)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res)
	// Output:
	// [0 1 2 3]
	// map[0:Hello, World 1:Hello, World 2:Hello, World 3:Hello, World]
}

// Data goes to engines and back: Scatter gives each engine a contiguous
// part of a slice (numeric slices travel as raw arrays), Gather joins
// the parts in engine order.
func ExampleDirectView_Scatter() {
	ctx := context.Background()
	c, _ := client.Connect(ctx, client.Options{})
	defer c.Close()
	dv := c.DirectView(client.All)

	r, _ := dv.Scatter(ctx, "x", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	r.Wait(ctx)

	r, _ = dv.Pull(ctx, "x")
	parts, _ := client.Results[[]float64](ctx, r)
	fmt.Println(parts[0], parts[3])

	all, _ := dv.Gather(ctx, "x")
	fmt.Println(all)
	// Output:
	// [1 2 3] [9 10]
	// [1 2 3 4 5 6 7 8 9 10]
}

// A load-balanced map: the scheduler sends chunks of items to whichever
// engine has room. Here the engines have registered
//
//	eng.Register("square", func(x int) int { return x * x })
func ExampleLoadBalancedView_Map() {
	ctx := context.Background()
	c, _ := client.Connect(ctx, client.Options{})
	defer c.Close()

	m, err := c.LoadBalancedView().Map(ctx, "square", []int{1, 2, 3, 4, 5, 6, 7, 8}, client.ChunkSize(3))
	if err != nil {
		fmt.Println(err)
		return
	}
	squares, err := client.Collect[int](ctx, m)
	fmt.Println(squares, err)
	// Output: [1 4 9 16 25 36 49 64] <nil>
}

// Results come as they complete when the order does not matter.
func ExampleMapResult_Items() {
	ctx := context.Background()
	c, _ := client.Connect(ctx, client.Options{})
	defer c.Close()

	m, _ := c.LoadBalancedView().Map(ctx, "square", []int{1, 2, 3, 4}, client.ChunkSize(1), client.Ordered(false))
	var got []int64
	for it, err := range m.Items(ctx) {
		if err != nil {
			fmt.Println(err)
			return
		}
		got = append(got, it.Value.(int64))
	}
	slices.Sort(got)
	fmt.Println(got)
	// Output: [1 4 9 16]
}

// A balanced task runs on one engine; Result decodes it into a Go type.
func ExampleResult() {
	ctx := context.Background()
	c, _ := client.Connect(ctx, client.Options{})
	defer c.Close()

	r, _ := c.LoadBalancedView().Apply(ctx, "square", 12)
	n, err := client.Result[int](ctx, r)
	fmt.Println(n, err)
	fmt.Println(r.Metadata()[0].Status)
	// Output:
	// 144 <nil>
	// ok
}

// Errors raised on engines come back typed, with the engine and the
// remote error's type and message.
func ExampleRemoteError() {
	ctx := context.Background()
	c, _ := client.Connect(ctx, client.Options{})
	defer c.Close()

	r, _ := c.DirectView(client.Engines(2)).Apply(ctx, "square", "not a number")
	_, err := r.Value(ctx)
	var re *client.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Engine, re.Type)
		fmt.Println(re.Message)
	}
	// Output:
	// 2 TypeError
	// argument 1 of square(int): wire: cannot decode a string into int
}

// The ranks of an MPI job (here the 4 engines started by `ipcluster
// mpiexec -n 4`) are addressed as one job: its view runs a call on every
// rank at once, as an MPI collective needs, and ResultList returns the
// results in rank order.
func ExampleJob_View() {
	ctx := context.Background()
	c, _ := client.Connect(ctx, client.Options{})
	defer c.Close()
	for _, j := range c.Jobs() {
		fmt.Println("job", j.ID, "ranks", j.Ranks, "of", j.Size)
	}

	r, _ := c.Job(1).View().Apply(ctx, "rank")
	ranks, _ := client.ResultList[int](ctx, r)
	fmt.Println(ranks)

	r, _ = c.Job(1).Ranks(3, 1).Apply(ctx, "rank")
	some, _ := client.ResultList[int](ctx, r)
	fmt.Println(some)
	// Output:
	// job 1 ranks [0 1 2 3] of 4
	// [0 1 2 3]
	// [3 1]
}

// Code cells: Starlark code runs on every engine, in a namespace that
// lasts from cell to cell and that Push and Pull share. What a cell prints
// comes back with its result; the value of a last expression is the result.
func ExampleDirectView_Execute() {
	ctx := context.Background()
	c, _ := client.Connect(ctx, client.Options{})
	defer c.Close()
	dv := c.DirectView(client.All)

	r, _ := dv.Execute(ctx, "x = engine.id * 10\nprint('engine', engine.id)\nx + 1")
	values, _ := client.Results[int](ctx, r)
	fmt.Println(values)
	fmt.Print(r.Metadata()[2].Stdout)

	r, _ = dv.Pull(ctx, "x")
	xs, _ := client.Results[int](ctx, r)
	fmt.Println(xs)
	// Output:
	// map[0:1 1:11 2:21 3:31]
	// engine 2
	// map[0:0 1:10 2:20 3:30]
}
