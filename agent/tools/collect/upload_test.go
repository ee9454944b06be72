package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/agent/testenv"
)

// The boxes of the reviewed data set, on the whole frame.
var (
	boxA1  = payload.Box{Left: 0.1, Top: 0.2, Width: 0.3, Height: 0.4}
	boxA2  = payload.Box{Left: 0.5, Top: 0.25, Width: 0.25, Height: 0.5}
	boxM   = payload.Box{Left: 0.4, Top: 0.4, Width: 0.2, Height: 0.2}
	boxR1  = dataset.Region{Tag: "part", Box: payload.Box{Left: 0.05, Top: 0.1, Width: 0.2, Height: 0.3}}
	boxR2  = dataset.Region{Tag: "screw", Box: payload.Box{Left: 0.7, Top: 0.6, Width: 0.25, Height: 0.375}}
	boxG   = payload.Box{Left: 0.6, Top: 0.1, Width: 0.1, Height: 0.1}
	boxN   = payload.Box{Left: 0.2, Top: 0.3, Width: 0.2, Height: 0.2}
	boxCut = payload.Box{Left: 0.9, Top: 0.5, Width: 0.2, Height: 0.3} // past the frame's right edge
)

// detSample is a sample of detection det of prediction pred, tagged "part" by the detector,
// with a crop of its own (n) and, when frame > 0, the whole frame (the same frame gives the
// same bytes).
func detSample(t *testing.T, id, pred string, det, n int, box payload.Box, frame int) payload.Sample {
	s := payload.Sample{Schema: 1, ID: id, Agent: "line3", Camera: "cam1", Reason: "low_confidence", PredictionID: pred,
		FrameID: 7, Detection: &det, Captured: time.Unix(1700000000, 0).UTC(),
		Models:     []payload.ModelRef{{Stage: "detector", Name: "parts"}},
		Prediction: &payload.Tag{TagName: "part", Probability: 0.4, BoundingBox: &box},
		Crop:       &payload.Image{JPEG: jpegOf(t, n), Width: 16, Height: 12, Box: &box}}
	if frame > 0 {
		s.Frame = &payload.Image{JPEG: jpegOf(t, 1000+frame), Width: 16, Height: 12}
	}
	return s
}

// reviewed is a data set answered in the review queue, as the station writes it:
//   - a1, a2: two detections of prediction p-A (one frame, sent twice), a1 confirmed "part",
//     a2 corrected to "screw";
//   - m: a detection of p-M, answered missed: two parts the detector did not find (boxR1,
//     boxR2), entries m-missed-1 (with the frame and both boxes) and m-missed-2;
//   - g: a false detection, in the Negative folder;
//   - n: a detection confirmed whose sample has no whole frame;
//   - cut: a sample of cvedge collect whose box passes the frame's edge.
func reviewed(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "dataset")
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	q, err := review.Open(filepath.Join(root, "review"), 0, 0, ds)
	if err != nil {
		t.Fatal(err)
	}
	answers := []struct {
		s payload.Sample
		a review.Answer
	}{
		{detSample(t, "a1", "p-A", 0, 1, boxA1, 1), review.Answer{Kind: review.Confirm}},
		{detSample(t, "a2", "p-A", 1, 2, boxA2, 1), review.Answer{Kind: review.Correct, Tag: "screw"}},
		{detSample(t, "m", "p-M", 0, 3, boxM, 2), review.Answer{Kind: review.Missed, Boxes: []dataset.Region{boxR1, boxR2}}},
		{detSample(t, "g", "p-G", 0, 4, boxG, 3), review.Answer{Kind: review.FalseDetection}},
		{detSample(t, "n", "p-N", 0, 5, boxN, 0), review.Answer{Kind: review.Confirm}},
	}
	for _, x := range answers {
		if added, err := q.Add(x.s); err != nil || !added {
			t.Fatalf("queue %s: %v %v", x.s.ID, added, err)
		}
		if _, err := q.Answer(x.s.ID, x.a); err != nil {
			t.Fatalf("answer %s: %v", x.s.ID, err)
		}
	}
	cut := detSample(t, "cut", "p-C", 0, 6, boxCut, 4)
	cut.CorrectTag = "part"
	if _, added, err := ds.Add(cut); err != nil || !added {
		t.Fatalf("cut: %v %v", added, err)
	}
	return dir
}

func readData(t *testing.T, dir, rel string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func entryOf(t *testing.T, dir, id string) dataset.Entry {
	t.Helper()
	entries, err := dataset.ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.SampleID == id {
			return e
		}
	}
	t.Fatalf("no entry %s in the data set", id)
	return dataset.Entry{}
}

func imageNamed(t *testing.T, images []ImageEntry, name string) ImageEntry {
	t.Helper()
	for _, im := range images {
		if im.Name == name {
			return im
		}
	}
	t.Fatalf("no image %s uploaded", name)
	return ImageEntry{}
}

// wantRegions checks an image's regions against boxes, tagged by name (tag ids are "tag-"
// and the name, as the fake makes them), in any order.
func wantRegions(t *testing.T, im ImageEntry, want ...dataset.Region) {
	t.Helper()
	var got, exp []string
	for _, r := range im.Regions {
		got = append(got, fmt.Sprintf("%s %g,%g %gx%g", r.TagID, r.Left, r.Top, r.Width, r.Height))
	}
	for _, r := range want {
		exp = append(exp, fmt.Sprintf("tag-%s %g,%g %gx%g", r.Tag, r.Left, r.Top, r.Width, r.Height))
	}
	slices.Sort(got)
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		t.Errorf("image %s regions\n got %v\nwant %v", im.Name, got, exp)
	}
}

func trainingFor(url string, log *slog.Logger) *Training {
	return &Training{Endpoint: url, Key: "secret-key", Project: "proj-1", Backoff: time.Millisecond, Log: log}
}

// TestUploadDetectionFramesWithAllRegions: a detection project gets each whole frame once,
// with every region the data set knows on it, tagged by id; false detections and samples
// without a frame are left out, and the log says so; a restart sends nothing again.
func TestUploadDetectionFramesWithAllRegions(t *testing.T) {
	dir := reviewed(t)
	fake := &fakeTraining{t: t, detection: true, tags: map[string]string{"part": "tag-part"}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	var logs testenv.LogBuffer
	tr := trainingFor(srv.URL, slog.New(slog.NewTextHandler(&logs, nil)))
	sent, refused, err := (&Uploader{T: tr, Dir: dir}).Sync(context.Background())
	if err != nil || sent != 3 || refused != 0 {
		t.Fatalf("sent %d refused %d: %v; want the frames of p-A, p-M and cut", sent, refused, err)
	}
	if len(fake.images) != 3 {
		t.Fatalf("%d images uploaded, want 3 (one per frame)", len(fake.images))
	}
	a := imageNamed(t, fake.images, "a1.jpg")
	if !bytes.Equal(a.Contents, readData(t, dir, entryOf(t, dir, "a1").FrameFile)) {
		t.Error("a1.jpg is not the whole frame of a1")
	}
	wantRegions(t, a, dataset.Region{Tag: "part", Box: boxA1}, dataset.Region{Tag: "screw", Box: boxA2})
	m := imageNamed(t, fake.images, "m-missed-1.jpg")
	if !bytes.Equal(m.Contents, readData(t, dir, entryOf(t, dir, "m-missed-1").FrameFile)) {
		t.Error("m-missed-1.jpg is not the whole frame of m")
	}
	wantRegions(t, m, boxR1, boxR2)
	c := imageNamed(t, fake.images, "cut.jpg")
	wantRegions(t, c, dataset.Region{Tag: "part", Box: payload.Box{Left: 0.9, Top: 0.5, Width: 1 - float32(0.9), Height: 0.3}})
	if fake.tags["screw"] != "tag-screw" {
		t.Error("the tag screw was not created")
	}

	// the request as the Training API reads it
	var body struct {
		Images []map[string]json.RawMessage `json:"images"`
	}
	if err := json.Unmarshal(fake.bodies[0], &body); err != nil {
		t.Fatal(err)
	}
	var regions []map[string]any
	json.Unmarshal(body.Images[0]["regions"], &regions)
	for _, k := range []string{"tagId", "left", "top", "width", "height"} {
		if _, ok := regions[0][k]; !ok {
			t.Errorf("a region in the request has no %q: %v", k, regions[0])
		}
	}
	if _, ok := body.Images[0]["tagIds"]; ok {
		t.Errorf("a detection image carries image tags: %s", body.Images[0]["tagIds"])
	}

	for _, want := range []string{"false detections (the Negative folder) not uploaded", "samples=1", "samples.full_frame: true"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	uploaded := string(readData(t, dir, UploadedFile))
	for _, id := range []string{"a1", "a2", "m-missed-1", "m-missed-2", "cut"} {
		if !strings.Contains(uploaded, `"sampleId":"`+id+`"`) {
			t.Errorf("%s is not recorded as uploaded:\n%s", id, uploaded)
		}
	}

	// a restart sends nothing again
	calls := len(fake.batches)
	if sent, refused, err := (&Uploader{T: tr, Dir: dir}).Sync(context.Background()); err != nil || sent+refused != 0 || len(fake.batches) != calls {
		t.Fatalf("after a restart: sent %d refused %d, %d batches: %v", sent, refused, len(fake.batches)-calls, err)
	}
}

// TestUploadReportCountsLeftOut: the report of an upload to a detection project counts the
// samples left out, by why, every time.
func TestUploadReportCountsLeftOut(t *testing.T) {
	dir := reviewed(t)
	os.Remove(filepath.Join(dir, filepath.FromSlash(entryOf(t, dir, "cut").FrameFile)))
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	whole := payload.Sample{Schema: 1, ID: "whole", Agent: "line3", Camera: "cam2", Reason: "operator", CorrectTag: "part",
		Frame: &payload.Image{JPEG: jpegOf(t, 77), Width: 16, Height: 12}} // a classifier's: the whole frame, no box
	if _, added, err := ds.Add(whole); err != nil || !added {
		t.Fatalf("whole: %v %v", added, err)
	}
	ds.Close()
	fake := &fakeTraining{t: t, detection: true, tags: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	u := &Uploader{T: trainingFor(srv.URL, quiet), Dir: dir}
	for i := range 2 {
		r, err := u.Upload(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := Report{Sent: 2, Negative: 1, NoFrame: 1, NoRegion: 1, Missing: 1}
		if i == 1 {
			want.Sent = 0
		}
		if r != want || r.Skipped() != 4 {
			t.Fatalf("upload %d: %+v, want %+v", i+1, r, want)
		}
	}
}

// TestUploadClassificationReviewAnswers: a classification project gets every answer's crop
// under its tag, the cut-out parts of a missed answer included, and the false detections
// under the project's negative tag, created with the type Negative when it has none.
func TestUploadClassificationReviewAnswers(t *testing.T) {
	for _, tc := range []struct {
		name          string
		tags, types   map[string]string
		negative      string // the id the false detection must carry
		warnsRegular  bool
		createsNegTag bool
	}{
		{name: "no negative tag yet", tags: map[string]string{}, negative: "tag-Negative", createsNegTag: true},
		{name: "negative tag of another name", tags: map[string]string{"Nothing": "tag-Nothing"},
			types: map[string]string{"Nothing": "Negative"}, negative: "tag-Nothing"},
		{name: "regular tag named Negative", tags: map[string]string{"Negative": "tag-Negative"}, negative: "tag-Negative", warnsRegular: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := reviewed(t)
			fake := &fakeTraining{t: t, tags: tc.tags, types: tc.types}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			var logs testenv.LogBuffer
			sent, refused, err := (&Uploader{T: trainingFor(srv.URL, slog.New(slog.NewTextHandler(&logs, nil))), Dir: dir}).Sync(context.Background())
			if err != nil || sent != 7 || refused != 0 {
				t.Fatalf("sent %d refused %d: %v; want the 7 tagged crops", sent, refused, err)
			}
			for id, tag := range map[string]string{"a1": "tag-part", "a2": "tag-screw", "m-missed-1": "tag-part", "m-missed-2": "tag-screw",
				"g": tc.negative, "n": "tag-part", "cut": "tag-part"} {
				im := imageNamed(t, fake.images, id+".jpg")
				if !slices.Equal(im.TagIDs, []string{tag}) || len(im.Regions) != 0 {
					t.Errorf("%s: tags %v regions %v, want [%s]", id, im.TagIDs, im.Regions, tag)
				}
				if !bytes.Equal(im.Contents, readData(t, dir, entryOf(t, dir, id).File)) {
					t.Errorf("%s: not the crop", id)
				}
			}
			if got := fake.types[review.NegativeTag]; tc.createsNegTag && got != "Negative" {
				t.Errorf("the tag Negative was created of type %q, want Negative", got)
			}
			if _, made := fake.tags[review.NegativeTag]; tc.negative == "tag-Nothing" && made {
				t.Error("a second negative tag was created: a project has at most one")
			}
			if warned := strings.Contains(logs.String(), "is a regular tag"); warned != tc.warnsRegular {
				t.Errorf("warning about a regular tag Negative: %v, want %v\n%s", warned, tc.warnsRegular, logs.String())
			}
		})
	}
	if NegativeTag != review.NegativeTag {
		t.Fatalf("NegativeTag %q is not the review queue's folder %q", NegativeTag, review.NegativeTag)
	}
}

// TestUploadCountsRefusedImages: images the Training API refuses, and an image over its size
// limit (not sent), are counted as refused and recorded, so that they are not sent again.
func TestUploadCountsRefusedImages(t *testing.T) {
	dir := t.TempDir()
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := ds.Add(sample(t, i, "red", false)); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, MaxImageBytes+1)
	copy(big, []byte("\xff\xd8"))
	if _, _, err := ds.AddJPEG(dataset.Entry{SampleID: "huge", Tag: "red"}, big, nil); err != nil {
		t.Fatal(err)
	}
	ds.Close()
	fake := &fakeTraining{t: t, tags: map[string]string{}, refuse: map[string]string{"s-002.jpg": "ErrorImageFormat"}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	var logs testenv.LogBuffer
	tr := trainingFor(srv.URL, slog.New(slog.NewTextHandler(&logs, nil)))
	sent, refused, err := (&Uploader{T: tr, Dir: dir}).Sync(context.Background())
	if err != nil || sent != 4 || refused != 2 {
		t.Fatalf("sent %d refused %d: %v; want 4 and 2 (one refused, one too large)", sent, refused, err)
	}
	for _, im := range fake.images {
		if im.Name == "huge.jpg" {
			t.Error("an image over the Training API's size limit was sent")
		}
	}
	for _, want := range []string{`"sampleId":"s-002","status":"ErrorImageFormat"`, `"sampleId":"huge","status":"ErrorImageSize"`} {
		if !strings.Contains(string(readData(t, dir, UploadedFile)), want) {
			t.Errorf("%s is not recorded", want)
		}
	}
	for _, want := range []string{"the Training API refused an image", "over the Training API's limits"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	calls := len(fake.batches)
	if sent, refused, err := (&Uploader{T: tr, Dir: dir}).Sync(context.Background()); err != nil || sent+refused != 0 || len(fake.batches) != calls {
		t.Fatalf("after a restart: sent %d refused %d: %v", sent, refused, err)
	}
}

// TestUploadFuncSerializes: the function for the station's upload button sends a data set
// once, however often and however concurrently it is pressed.
func TestUploadFuncSerializes(t *testing.T) {
	dir := reviewed(t)
	fake := &fakeTraining{t: t, tags: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	upload := UploadFunc(trainingFor(srv.URL, quiet), dir)
	total := make(chan int, 4)
	for range 4 {
		go func() {
			sent, _, err := upload(context.Background())
			if err != nil {
				t.Error(err)
			}
			total <- sent
		}()
	}
	n := 0
	for range 4 {
		n += <-total
	}
	if n != 7 || len(fake.images) != 7 {
		t.Fatalf("%d sent, %d images received; want each of the 7 once", n, len(fake.images))
	}
}

// TestBatchEnd: a batch ends at MaxBatch images or MaxBatchBytes, holds at least one image,
// and images not to be sent take no room.
func TestBatchEnd(t *testing.T) {
	items := func(sizes ...int64) []*item {
		var out []*item
		for _, s := range sizes {
			out = append(out, &item{size: s})
		}
		return out
	}
	const mb = 1 << 20
	cases := []struct {
		items []*item
		want  []int
	}{
		{items(20*mb, 5*mb, mb), []int{1, 3}},
		{items(30*mb, mb), []int{1, 2}},
		{items(slices.Repeat([]int64{1}, 70)...), []int{64, 70}},
	}
	skip := items(mb, mb)
	skip[0].status = "ErrorImageSize"
	cases = append(cases, struct {
		items []*item
		want  []int
	}{append(skip, items(slices.Repeat([]int64{1}, 64)...)...), []int{65, 66}})
	for i, c := range cases {
		var ends []int
		for start := 0; start < len(c.items); start = ends[len(ends)-1] {
			ends = append(ends, batchEnd(c.items, start))
		}
		if !slices.Equal(ends, c.want) {
			t.Errorf("case %d: batches end at %v, want %v", i, ends, c.want)
		}
	}
}

// TestUploadLateRegionsJoinTheirFrame: a sample answered after its frame went up adds its
// region to that image, also after a restart, instead of sending the frame again; a frame
// the project had from elsewhere (a duplicate) gets the regions too.
func TestUploadLateRegionsJoinTheirFrame(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "dataset")
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	q, err := review.Open(filepath.Join(root, "review"), 0, 0, ds)
	if err != nil {
		t.Fatal(err)
	}
	answer := func(s payload.Sample, a review.Answer) {
		t.Helper()
		if _, err := q.Add(s); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Answer(s.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	fake := &fakeTraining{t: t, detection: true, tags: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	tr := trainingFor(srv.URL, quiet)

	answer(detSample(t, "a1", "p-A", 0, 1, boxA1, 1), review.Answer{Kind: review.Confirm})
	if sent, _, err := (&Uploader{T: tr, Dir: dir}).Sync(context.Background()); err != nil || sent != 1 {
		t.Fatalf("first upload: sent %d: %v", sent, err)
	}
	// a second detection of the same frame, answered after a restart
	answer(detSample(t, "a2", "p-A", 1, 2, boxA2, 1), review.Answer{Kind: review.Correct, Tag: "screw"})
	r, err := (&Uploader{T: tr, Dir: dir}).Upload(context.Background())
	if err != nil || r.Sent != 1 || r.Regions != 1 || r.Refused != 0 {
		t.Fatalf("second upload: %+v: %v", r, err)
	}
	if len(fake.images) != 1 {
		t.Fatalf("%d images sent: the frame went up again", len(fake.images))
	}
	wantRegions(t, ImageEntry{Name: "img-1", Regions: fake.regions["img-1"]},
		dataset.Region{Tag: "part", Box: boxA1}, dataset.Region{Tag: "screw", Box: boxA2})

	// another data set with the same frame, sent to the same project: a duplicate there
	other := t.TempDir()
	ods, err := dataset.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	s := detSample(t, "b", "p-A", 2, 7, boxN, 1)
	s.CorrectTag = "part"
	if _, _, err := ods.Add(s); err != nil {
		t.Fatal(err)
	}
	ods.Close()
	if sent, refused, err := (&Uploader{T: tr, Dir: other}).Sync(context.Background()); err != nil || sent != 1 || refused != 0 {
		t.Fatalf("duplicate frame: sent %d refused %d: %v", sent, refused, err)
	}
	wantRegions(t, ImageEntry{Name: "img-1", Regions: fake.regions["img-1"]},
		dataset.Region{Tag: "part", Box: boxA1}, dataset.Region{Tag: "screw", Box: boxA2}, dataset.Region{Tag: "part", Box: boxN})
}

// TestUploadManyLateRegions: the regions added to a frame already up go in batches of at
// most 64 (the fake refuses more).
func TestUploadManyLateRegions(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "dataset")
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	q, err := review.Open(filepath.Join(root, "review"), 0, 0, ds)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeTraining{t: t, detection: true, tags: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	u := &Uploader{T: trainingFor(srv.URL, quiet), Dir: dir}
	for i, x := range []struct {
		s payload.Sample
		a review.Answer
	}{
		{detSample(t, "a1", "p-A", 0, 1, boxA1, 1), review.Answer{Kind: review.Confirm}},
		{detSample(t, "m", "p-A", 1, 2, boxA2, 1), review.Answer{Kind: review.Missed}},
	} {
		if i == 1 { // 70 parts missed on the frame, one pixel each
			for n := range 70 {
				x.a.Boxes = append(x.a.Boxes, dataset.Region{Tag: "part", Box: payload.Box{Left: float32(n%16) / 16, Top: float32(n/16) / 12, Width: 1.0 / 16, Height: 1.0 / 12}})
			}
		}
		if _, err := q.Add(x.s); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Answer(x.s.ID, x.a); err != nil {
			t.Fatal(err)
		}
		if sent, refused, err := u.Sync(context.Background()); err != nil || sent != 1 || refused != 0 {
			t.Fatalf("upload %d: sent %d refused %d: %v", i+1, sent, refused, err)
		}
	}
	if len(fake.images) != 1 || len(fake.regions["img-1"]) != 71 {
		t.Fatalf("%d images, the frame has %d regions; want 1 image with 71", len(fake.images), len(fake.regions["img-1"]))
	}
}

// TestUploadRegionsFailing: when adding regions to a frame already up fails, the images of
// the same batch that went up are recorded (not sent again), and the regions are tried again
// on the next upload.
func TestUploadRegionsFailing(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "dataset")
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	q, err := review.Open(filepath.Join(root, "review"), 0, 0, ds)
	if err != nil {
		t.Fatal(err)
	}
	answer := func(s payload.Sample, a review.Answer) {
		t.Helper()
		if _, err := q.Add(s); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Answer(s.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	fake := &fakeTraining{t: t, detection: true, tags: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	u := &Uploader{T: trainingFor(srv.URL, quiet), Dir: dir}
	answer(detSample(t, "a1", "p-A", 0, 1, boxA1, 1), review.Answer{Kind: review.Confirm})
	if sent, _, err := u.Sync(context.Background()); err != nil || sent != 1 {
		t.Fatalf("first upload: sent %d: %v", sent, err)
	}
	answer(detSample(t, "a2", "p-A", 1, 2, boxA2, 1), review.Answer{Kind: review.Confirm})
	answer(detSample(t, "c", "p-C", 0, 3, boxN, 2), review.Answer{Kind: review.Confirm})
	fake.noRegions = true
	if _, _, err := u.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "Bad Request") {
		t.Fatalf("regions refused: err %v", err)
	}
	fake.noRegions = false
	r, err := (&Uploader{T: u.T, Dir: dir}).Upload(context.Background())
	if err != nil || r.Sent != 1 || r.Regions != 1 {
		t.Fatalf("after the failure: %+v: %v; want the regions of a2 only", r, err)
	}
	if len(fake.images) != 2 {
		t.Fatalf("%d images sent; want a1's and c's frames, once each", len(fake.images))
	}
	if len(fake.regions["img-1"]) != 2 {
		t.Fatalf("a1's frame has regions %v; want a1's and a2's", fake.regions["img-1"])
	}
}

// FuzzPlanFrames: whatever the data set's index and upload log say (they are files an
// operator may edit or a crash may cut), planning an upload to a detection project does not
// fail, and every region it would send lies inside the frame.
func FuzzPlanFrames(f *testing.F) {
	f.Add([]byte(`{"sampleId":"a","file":"part/a.jpg","frameFile":"frames/a.jpg","tag":"part","agent":"l","camera":"c","predictionId":"p","captured":"2026-11-29T08:00:00Z","region":{"left":0.9,"top":0.1,"width":0.5,"height":0.2}}
{"sampleId":"b-missed-1","file":"part/b.jpg","frameFile":"frames/a.jpg","tag":"part","agent":"l","camera":"c","predictionId":"p","captured":"2026-11-29T08:00:00Z","region":{"left":0,"top":0,"width":0.1,"height":0.1},"regions":[{"tag":"part","left":0,"top":0,"width":0.1,"height":0.1},{"tag":"screw","left":-1,"top":0.5,"width":1.5,"height":0.1}]}
{"sampleId":"b-missed-2","file":"screw/b2.jpg","tag":"screw","agent":"l","camera":"c","predictionId":"p","captured":"2026-11-29T08:00:00Z","region":{"left":-1,"top":0.5,"width":1.5,"height":0.1}}
{"sampleId":"g","file":"Negative/g.jpg","frameFile":"frames/a.jpg","tag":"Negative"}
`), []byte(`{"sampleId":"a","status":"OK","imageId":"img-1","frame":["frame:l\u0000c"]}`+"\n"))
	f.Add([]byte(`{"sampleId":"x","frameFile":"../../etc/passwd","tag":"t","region":{"left":1e38,"top":-1e38,"width":1e38,"height":1e38}}`+"\n"), []byte("{"))
	f.Add([]byte(`{"sampleId":"y","frameFile":"frames/a.jpg","tag":"","regions":[{"tag":"","left":0,"top":0,"width":1,"height":1}]}`+"\n"), []byte{})
	frame := []byte("\xff\xd8 not much of a frame")
	f.Fuzz(func(t *testing.T, index, log []byte) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "frames"), 0o755)
		os.WriteFile(filepath.Join(dir, "frames", "a.jpg"), frame, 0o644)
		os.WriteFile(filepath.Join(dir, dataset.IndexFile), index, 0o644)
		os.WriteFile(filepath.Join(dir, UploadedFile), log, 0o644)
		entries, err := dataset.ReadIndex(dir)
		if err != nil {
			return
		}
		u := &Uploader{T: &Training{Log: quiet}, Dir: dir}
		if u.done, u.inProject, err = readUploaded(dir); err != nil {
			t.Fatal(err)
		}
		todo, _ := u.frames(entries)
		for _, it := range todo {
			if len(it.members) == 0 || (len(it.regions) == 0 && it.status == "") {
				t.Fatalf("item %+v: no sample or no region", it)
			}
			for _, r := range it.regions {
				if !(r.Left >= 0 && r.Top >= 0 && r.Width > 0 && r.Height > 0 && r.Left+r.Width <= 1 && r.Top+r.Height <= 1) || r.Tag == "" {
					t.Fatalf("region %+v is not a tagged box inside the frame", r)
				}
			}
		}
	})
}

// TestStationUpload: no training variables, no upload button; some of them, an error naming
// those missing; all three, an upload.
func TestStationUpload(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	for _, k := range []string{EnvEndpoint, EnvKey, EnvProject} {
		t.Setenv(k, "")
	}
	if up, err := StationUpload(dir, log); up != nil || err != nil {
		t.Fatalf("no variables: %v %v, want no upload and no error", up != nil, err)
	}
	t.Setenv(EnvEndpoint, "https://res.cognitiveservices.azure.com/")
	if _, err := StationUpload(dir, log); err == nil || !strings.Contains(err.Error(), EnvKey) || !strings.Contains(err.Error(), EnvProject) {
		t.Fatalf("endpoint alone: %v, want an error naming %s and %s", err, EnvKey, EnvProject)
	}
	t.Setenv(EnvKey, "k")
	t.Setenv(EnvProject, "0b8fc1d3-7a4e-4a5e-9f6a-2d1c3b4a5e6f")
	if up, err := StationUpload(dir, log); up == nil || err != nil {
		t.Fatalf("all three: %v %v, want an upload", up != nil, err)
	}
}

// TestUploadDetectionTakesTheDetectorsTag: a detection project trains the detector, so the
// box of a sample a classifier named ("part" found, classified "scratch") goes up with the
// detector's tag; a detector alone's sample keeps its (corrected) tag.
func TestUploadDetectionTakesTheDetectorsTag(t *testing.T) {
	dir := t.TempDir()
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	two := sample(t, 1, "scratch", true)
	two.Models = []payload.ModelRef{{Stage: "detector", Name: "parts"}, {Stage: "classifier", Name: "defects"}}
	alone := sample(t, 2, "bolt", true)
	alone.Models = []payload.ModelRef{{Stage: "detector", Name: "parts"}}
	for _, s := range []payload.Sample{two, alone} {
		if _, _, err := ds.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	ds.Close()
	fake := &fakeTraining{t: t, detection: true, tags: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	if _, _, err := (&Uploader{T: trainingFor(srv.URL, quiet), Dir: dir}).Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, im := range fake.images {
		got[im.Name] = strings.Join(regionTags(im.Regions), ",")
	}
	if got["s-001.jpg"] != "tag-part" || got["s-002.jpg"] != "tag-bolt" {
		t.Fatalf("region tags by image %v, want s-001 (detector and classifier) under part, s-002 (detector alone) under bolt", got)
	}
}
