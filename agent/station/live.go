package station

import (
	"fmt"
	"net/http"
	"slices"
)

// mjpegBoundary separates the frames of a live stream.
const mjpegBoundary = "cvedgeframe"

// live streams a camera's annotated frames as multipart/x-mixed-replace (MJPEG), which an
// <img> shows as it comes, for as long as the browser keeps the connection open. The camera
// draws and encodes frames only while at least one such stream is open.
func (s *Station) live(w http.ResponseWriter, r *http.Request) {
	camera := r.PathValue("camera")
	if s.o.Live == nil || !s.showsLive(camera) {
		http.Error(w, fmt.Sprintf("no live picture of camera %q here", camera), http.StatusNotFound)
		return
	}
	frames, stop := s.o.Live.watch(camera)
	defer stop()
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+mjpegBoundary)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush() // the headers now: the browser (and a client's Do) need not wait for a frame
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case jpeg := <-frames:
			if _, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", mjpegBoundary, len(jpeg)); err != nil {
				return
			}
			if _, err := w.Write(jpeg); err != nil {
				return
			}
			if _, err := w.Write([]byte("\r\n")); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// showsLive reports whether camera is one of those with a live picture.
func (s *Station) showsLive(camera string) bool {
	for _, a := range s.o.State().Agents {
		if slices.Contains(a.Live, camera) {
			return true
		}
	}
	return false
}
