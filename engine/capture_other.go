//go:build !linux

package engine

import "errors"

type capture struct{}

func startCapture(func(task, stream string, data []byte)) (*capture, error) {
	return nil, errors.New("engine: output capture is supported on Linux only")
}

func (c *capture) begin(string) {}
func (c *capture) end()         {}
func (c *capture) stop()        {}
