package camera

import (
	"fmt"

	"gocv.io/x/gocv"
)

// Probe opens the camera's source once, reads one frame, applies the rotation and the ROI to
// it and closes the source: the check that a source works, for `cvedge config check` and
// before a reload replaces a working camera. It does not start the camera, and it blocks
// for as long as opening the source takes.
func (c *Camera) Probe() error {
	g, err := c.open()
	if err != nil {
		return err
	}
	defer g.close()
	m := gocv.NewMat()
	defer m.Close()
	if err := g.read(&m); err != nil {
		return fmt.Errorf("opened %s %s but read no frame from it: %w", c.src.Kind, redact(c.src.Target), err)
	}
	return c.shape.apply(&m)
}
