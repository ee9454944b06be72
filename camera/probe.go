package camera

import (
	"errors"
	"fmt"
	"time"
)

// Probe opens the camera's source once, reads one frame, applies the rotation and the ROI to
// it and closes the source: the check that a source works, for `cvedge config check` and
// before a reload replaces a working camera. It does not start the camera. An open or a
// first read that takes longer than timeout (the capture library may wait for good on a
// GStreamer pipeline or a network source) is given up: Probe returns an error, and the
// source is closed whenever the library lets go of it.
func (c *Camera) Probe(timeout time.Duration) error {
	done := make(chan error, 1) // buffered: a probe given up on still finishes and frees
	go func() {
		done <- c.probe()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("opening the %s source and reading a frame did not finish within %s: check that the source answers", c.src.Kind, timeout)
	}
}

func (c *Camera) probe() error {
	g, err := c.open()
	if err != nil {
		return err
	}
	defer g.close()
	f := &Frame{Pos: -1}
	defer f.Close()
	if err := readFrame(g, f); err != nil {
		return fmt.Errorf("opened the %s source but read no frame from it: %w", c.src.Kind, err)
	}
	if f.Bounds().Empty() {
		return errors.New("opened the source but the frame read is empty")
	}
	return c.shape.apply(f, c.key())
}
