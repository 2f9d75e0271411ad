"""Independent reference implementations the runtime's tests compare against.

Everything here is written with the Python ecosystem's own tools (onnx, onnxruntime,
pydicom, numpy), not with the crate under test, so an agreement means two separate
implementations agree:

  make-model OUT [--no-metadata] [--rank3] [--size-multiple M] [--contrast C] [--guided] [--noise-coils L]
             [--noise-input K [--noise-metadata M]]
      a small encoder / decoder ONNX graph with the exported model's interface
      (input `image` [N,1,H,W], with --guided also `guide`, with --noise-input also
      `noise` [N,K], output `denoised`, symbolic N/H/W) and metadata: a single-contrast (or
      guided) denoiser of contrast C (pdfs).
  denoise MODEL IN.npy OUT.npy
      the serving pipeline in numpy + Python onnxruntime: per-slice 99.5th-percentile
      normalisation, centred reflect padding, inference, crop, inverse scale.
  dicom-series DIR KIND SLICE.npy...
      writes an MR Image Storage series (KIND u12 = 12-bit unsigned, s16 = 16-bit signed)
      with realistic attributes, one file per slice.
  dicom-compressed OUT
      a JPEG-LS file (encapsulated pixel data, a stub codestream) for the "no decoder in
      this build" case.
  dicom-enhanced OUT SLICE.npy... [--description D] [--sop-class enhanced|sc]
      one multi-frame instance holding the slices as frames: Enhanced MR Image Storage with
      shared and per-frame functional groups (positions as `dicom-series` writes them,
      12-bit, rescale 0.5), or (sc) a multi-frame secondary capture.
  dicom-compress SYNTAX OUTDIR FILE...
      re-encodes each file's pixel data with pydicom (SYNTAX rle: pydicom's own RLE
      Lossless encoder; j2k / j2k-lossy: JPEG 2000 through pylibjpeg-openjpeg), written
      to OUTDIR under the same name.
  dicom-dump FILE... OUT.json
      attributes and pixel values (rescaled) read back with pydicom.
  check-model MODEL
      onnx.checker.check_model(full_check=True); prints node counts per op type, the
      metadata and the graph's input / output shapes as JSON.
  triton-check CONFIG.pbtxt
      parses a Triton model config against Triton's own ModelConfig protobuf schema
      (from the tritonclient package); prints its main fields as JSON.
"""

import argparse
import datetime
import json
import sys

import numpy as np


def make_model(args):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    ch = 4
    pools = {1: 0, 2: 1, 4: 2, 8: 3}[args.size_multiple]

    def weight(name, shape, scale):
        return numpy_helper.from_array(
            (rng.standard_normal(shape) * scale).astype(np.float32), name
        )

    inits, nodes = [], []
    x = "image"
    cin = 1
    if args.guided:
        # A guided denoiser reads its guide (the partner contrast) beside the image.
        nodes.append(helper.make_node("Concat", ["image", "guide"], ["both"], axis=1))
        x, cin = "both", 2
    for level in range(pools + 1):
        w, b = f"enc{level}.w", f"enc{level}.b"
        inits += [weight(w, (ch, cin, 3, 3), 0.3), weight(b, (ch,), 0.05)]
        nodes.append(helper.make_node("Conv", [x, w, b], [f"enc{level}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("LeakyRelu", [f"enc{level}"], [f"enc{level}.act"], alpha=0.2))
        x = f"enc{level}.act"
        cin = ch
        if level < pools:
            nodes.append(
                helper.make_node("AveragePool", [x], [f"pool{level}"], kernel_shape=[2, 2], strides=[2, 2])
            )
            x = f"pool{level}"
    for level in range(pools):
        w, b = f"up{level}.w", f"up{level}.b"
        inits += [weight(w, (ch, ch, 2, 2), 0.3), weight(b, (ch,), 0.05)]
        nodes.append(helper.make_node("ConvTranspose", [x, w, b], [f"up{level}"], strides=[2, 2]))
        x = f"up{level}"
    inits += [weight("head.w", (1, ch, 3, 3), 0.2), weight("head.b", (1,), 0.01)]
    nodes.append(helper.make_node("Conv", [x, "head.w", "head.b"], ["head"], pads=[1, 1, 1, 1]))
    skip = "image"
    if args.fail_unless_64:
        # Any slice but 64x64 makes this Reshape fail inside ONNX Runtime: a model that
        # opens and warms up, then fails on the scanner's images.
        inits.append(numpy_helper.from_array(np.array([-1, 1, 64, 64], dtype=np.int64), "shape64"))
        nodes.append(helper.make_node("Reshape", ["image", "shape64"], ["image64"]))
        skip = "image64"
    if args.copy_guide:
        # A guided model that answers with its guide: what a swapped label looks like.
        skip = "guide"
    if args.noise_input:
        # A model that reads noise levels [N, K]: their sum, times zero, joins the output,
        # so the input is consumed without changing what the model answers.
        inits += [
            numpy_helper.from_array(np.array([-1, 1, 1, 1], dtype=np.int64), "level.shape"),
            numpy_helper.from_array(np.zeros((1,), dtype=np.float32), "level.zero"),
        ]
        nodes.append(helper.make_node("ReduceSum", ["noise"], ["level.sum"], keepdims=1))
        nodes.append(helper.make_node("Reshape", ["level.sum", "level.shape"], ["level.plane"]))
        nodes.append(helper.make_node("Mul", ["level.plane", "level.zero"], ["level.none"]))
        nodes.append(helper.make_node("Add", ["head", "level.none"], ["head.level"]))
        nodes.append(helper.make_node("Add", ["head.level", skip], ["denoised"]))
    else:
        nodes.append(helper.make_node("Add", ["head", skip], ["denoised"]))

    in_shape = out_shape = ["N", 1, "H", "W"]
    if args.rank3:
        # A model for [N, H, W] slices, without a channel axis.
        in_shape = out_shape = ["N", "H", "W"]
        nodes = [helper.make_node("Relu", ["image"], ["denoised"])]
        inits = []
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)]
    if args.guided:
        inputs.append(helper.make_tensor_value_info("guide", TensorProto.FLOAT, in_shape))
    if args.noise_input:
        inputs.append(helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["N", args.noise_input]))
    graph = helper.make_graph(
        nodes,
        "test-denoiser",
        inputs,
        [helper.make_tensor_value_info("denoised", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    if not args.no_metadata:
        # A denoiser of one contrast (PDFS unless told): its output is its input's contrast.
        domain = {"pd": "a", "pdfs": "b"}
        partner = {"pd": "pdfs", "pdfs": "pd"}[args.contrast]
        props = {
            "crossdenoise.kind": "guided" if args.guided else "single",
            "crossdenoise.from": domain[args.contrast],
            "crossdenoise.to": domain[args.contrast],
            "crossdenoise.from_name": args.contrast,
            "crossdenoise.to_name": args.contrast,
            "crossdenoise.depth": str(pools),
            "crossdenoise.base_channels": str(ch),
            "crossdenoise.normalization.percentile": "99.5",
            "crossdenoise.normalization.clamp_max": "1.5",
            "crossdenoise.size_multiple": str(args.size_multiple),
            "crossdenoise.config_hash": "test",
            "crossdenoise.version": "test",
        }
        if args.guided:
            props.update(
                {
                    "crossdenoise.guide": domain[partner],
                    "crossdenoise.guide_name": partner,
                    "crossdenoise.guide.normalization.percentile": "99.5",
                    "crossdenoise.guide.normalization.clamp_max": "1.5",
                }
            )
        levels = args.noise_input if args.noise_metadata is None else args.noise_metadata
        if levels:
            props["crossdenoise.noise_levels"] = str(levels)
        if args.noise_coils > 1:
            props["crossdenoise.noise_coils"] = str(args.noise_coils)
        helper.set_model_props(model, props)
    onnx.save(model, args.out)


def reflect_pad(img, multiple):
    h, w = img.shape
    eh = -h % multiple
    ew = -w % multiple
    pads = ((eh // 2, eh - eh // 2), (ew // 2, ew - ew // 2))
    return np.pad(img, pads, mode="reflect"), pads


def denoise(args):
    import onnx
    import onnxruntime as ort

    props = {p.key: p.value for p in onnx.load(args.model).metadata_props}
    q = float(props["crossdenoise.normalization.percentile"])
    clamp = float(props["crossdenoise.normalization.clamp_max"])
    multiple = int(props["crossdenoise.size_multiple"])
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])

    stack = np.load(args.input).astype(np.float32)
    single = stack.ndim == 2
    if single:
        stack = stack[None]
    outs = []
    for img in stack:
        p = np.float32(np.percentile(img, q))
        scale = p if p > 0 else np.float32(1.0)
        norm = np.clip(img / scale, 0.0, clamp).astype(np.float32)
        padded, ((t, b), (l, r)) = reflect_pad(norm, multiple)
        out = sess.run(["denoised"], {"image": padded[None, None]})[0][0, 0]
        out = out[t : out.shape[0] - b, l : out.shape[1] - r]
        outs.append(out * scale)
    result = np.stack(outs).astype(np.float32)
    np.save(args.output, result[0] if single else result)


def new_uid():
    import uuid

    return "2.25." + str(uuid.uuid4().int)


def new_dataset(sop_class, transfer_syntax):
    """A Part 10 data set of `sop_class` with a new SOP Instance UID, its file meta in
    `transfer_syntax`."""
    from pydicom.dataset import FileDataset, FileMetaDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = new_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    return ds


def u12_stored(img):
    """12-bit unsigned stored values of real-world `img` under a rescale slope of 0.5."""
    return np.clip(np.round(img / 0.5), 0, 4095).astype(np.uint16)


def dicom_series(args):
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    study, series = args.study or new_uid(), args.series or new_uid()
    frame = args.frame or new_uid()
    now = datetime.datetime(2026, 11, 26, 9, 30, 0)
    for i, path in enumerate(args.slices):
        img = np.load(path).astype(np.float64)
        ds = new_dataset(MRImageStorage, ExplicitVRLittleEndian)
        ds.file_meta.ImplementationClassUID = generate_uid()
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.Modality = "MR"
        ds.Manufacturer = "Phantom Works"
        ds.PatientName = "Knee^Phantom"
        ds.PatientID = args.patient
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.AccessionNumber = "A0001"
        ds.StudyID = "1"
        ds.SeriesNumber = 3
        ds.InstanceNumber = i + 1 + args.first_number
        if args.images_in_acquisition:
            ds.ImagesInAcquisition = args.images_in_acquisition
        if args.phase_encoding:
            ds.InPlanePhaseEncodingDirection = args.phase_encoding
        if args.acceleration is not None:
            ds.ParallelAcquisition = "YES" if args.acceleration > 1 else "NO"
            ds.ParallelReductionFactorInPlane = args.acceleration
        ds.SeriesDescription = args.description
        ds.ProtocolName = args.protocol
        ds.BodyPartExamined = "KNEE"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = ["SK", "SP"]
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = 3000.0
        ds.EchoTime = 30.0
        ds.MagneticFieldStrength = 3.0
        ds.SliceThickness = 3.0
        ds.SpacingBetweenSlices = 3.3
        ds.PixelSpacing = [0.3125, 0.3125]
        k = i + args.first_number
        ds.SliceLocation = -20.0 + 3.3 * k + args.offset
        ds.ImagePositionPatient = [-50.0, -20.0 + 3.3 * k + args.offset, 50.0]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
        ds.Rows, ds.Columns = img.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.WindowCenter = 1000
        ds.WindowWidth = 2000
        if args.kind == "u12":
            # 12-bit unsigned stored values with a non-trivial rescale.
            ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
            ds.RescaleSlope, ds.RescaleIntercept = 0.5, 0.0
            stored = u12_stored(img)
        else:
            # 16-bit signed stored values with an offset.
            ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = 2.0, 1000.0
            stored = np.clip(np.round((img - 1000.0) / 2.0), -32768, 32767).astype(np.int16)
        ds.RescaleType = "US"
        ds.PixelData = stored.tobytes()
        ds.save_as(f"{args.dir}/slice_{i:03d}.dcm", enforce_file_format=True)



def dicom_compressed(args):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless, MRImageStorage

    ds = new_dataset(MRImageStorage, JPEGLSLossless)
    ds.SeriesInstanceUID = new_uid()
    ds.Modality = "MR"
    ds.Rows, ds.Columns = 32, 32
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    # A JPEG-LS codestream header (SOI + SOF55 marker) is enough: the reader must refuse
    # the transfer syntax before trying to decode it.
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 60])
    ds["PixelData"].is_undefined_length = True
    ds.save_as(args.out, enforce_file_format=True)


def dicom_enhanced(args):
    from pydicom.dataset import Dataset
    from pydicom.uid import EnhancedMRImageStorage, ExplicitVRLittleEndian

    # Multi-frame grayscale word secondary capture: a SOP class the node does not take.
    sop_class = {
        "enhanced": EnhancedMRImageStorage,
        "sc": "1.2.840.10008.5.1.4.1.1.7.3",
    }[args.sop_class]
    ds = new_dataset(sop_class, ExplicitVRLittleEndian)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = new_uid(), new_uid(), new_uid()
    ds.Modality = "MR"
    ds.PatientName = "Knee^Phantom"
    ds.PatientID = "PH0001"
    ds.SeriesDescription = args.description
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    slices = [np.load(p).astype(np.float64) for p in args.slices]
    ds.Rows, ds.Columns = slices[0].shape
    ds.NumberOfFrames = len(slices)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    # 12-bit stored values, rescaled by 0.5: as `dicom-series u12` writes each slice.
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [0.3125, 0.3125]
    measures.SliceThickness = 3.0
    measures.SpacingBetweenSlices = 3.3
    shared.PixelMeasuresSequence = [measures]
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    shared.PlaneOrientationSequence = [orientation]
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 0.5, 0.0, "US"
    shared.PixelValueTransformationSequence = [transform]
    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    shared.MRImageFrameTypeSequence = [frame_type]
    geometry = Dataset()
    geometry.InPlanePhaseEncodingDirection = "COL"
    shared.MRFOVGeometrySequence = [geometry]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in range(len(slices)):
        frame = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [-50.0, -20.0 + 3.3 * k, 50.0]
        frame.PlanePositionSequence = [position]
        content = Dataset()
        content.InStackPositionNumber = k + 1
        frame.FrameContentSequence = [content]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    stored = [u12_stored(img) for img in slices]
    ds.PixelData = np.stack(stored).tobytes()
    ds.save_as(args.out, enforce_file_format=True)


def dicom_compress(args):
    import os

    import pydicom
    from pydicom.uid import JPEG2000, JPEG2000Lossless, RLELossless

    for path in args.files:
        ds = pydicom.dcmread(path)
        if args.syntax == "rle":
            ds.compress(RLELossless, encoding_plugin="pydicom")
        elif args.syntax == "j2k":
            ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        else:
            # Lossy at 10:1, as archives keep older studies.
            ds.compress(JPEG2000, encoding_plugin="pylibjpeg", j2k_cr=[10])
        ds.save_as(os.path.join(args.outdir, os.path.basename(path)), enforce_file_format=True)


def dicom_dump(args):
    import pydicom

    out = []
    for path in args.files:
        ds = pydicom.dcmread(path)
        attrs = {}
        for elem in ds:
            if elem.tag == 0x7FE00010:
                continue
            v = elem.value
            if isinstance(v, pydicom.multival.MultiValue):
                v = [str(x) for x in v]
            elif isinstance(v, (bytes, bytearray)):
                continue
            else:
                v = str(v)
            attrs[elem.keyword or str(elem.tag)] = v
        attrs["TransferSyntaxUID"] = str(ds.file_meta.TransferSyntaxUID)
        attrs["MediaStorageSOPInstanceUID"] = str(ds.file_meta.MediaStorageSOPInstanceUID)
        pixels = ds.pixel_array.astype(np.float64)
        slope = float(getattr(ds, "RescaleSlope", 1.0))
        intercept = float(getattr(ds, "RescaleIntercept", 0.0))
        out.append(
            {
                "path": path,
                "attrs": attrs,
                "stored_dtype": str(ds.pixel_array.dtype),
                "values": (pixels * slope + intercept).ravel().tolist(),
            }
        )
    with open(args.output, "w") as f:
        json.dump(out, f)


def check_model(args):
    import collections

    import onnx

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    counts = collections.Counter(n.op_type for n in model.graph.node)

    def shape(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    print(
        json.dumps(
            {
                "ir_version": model.ir_version,
                "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0],
                "ops": dict(counts),
                "metadata": {p.key: p.value for p in model.metadata_props},
                "inputs": {i.name: shape(i) for i in model.graph.input},
                "outputs": {o.name: shape(o) for o in model.graph.output},
                "doc": model.graph.doc_string,
            }
        )
    )


def triton_check(args):
    import importlib.util
    import os

    import tritonclient
    from google.protobuf import json_format, text_format

    # Load the generated schema module directly: importing tritonclient.grpc would pull grpc.
    path = os.path.join(os.path.dirname(tritonclient.__file__), "grpc", "model_config_pb2.py")
    spec = importlib.util.spec_from_file_location("model_config_pb2", path)
    schema = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schema)
    with open(args.config) as f:
        config = text_format.Parse(f.read(), schema.ModelConfig())
    print(json.dumps(json_format.MessageToDict(config)))


def mrd_h5(args):
    """An MRD file as ismrmrd-python records one: float and ushort magnitude images, a
    2-slice image and a complex image, with MetaContainer attributes."""
    import ismrmrd

    rng = np.random.default_rng(3)
    ds = ismrmrd.Dataset(args.out, "dataset", create_if_needed=True)
    ds.write_xml_header("<ismrmrdHeader/>")
    images = [
        ("image_0", (rng.random((1, 1, 40, 48)) * 1000).astype(np.float32)),
        ("image_0", (rng.random((1, 1, 40, 48)) * 1000).astype(np.float32)),
        ("image_1", (rng.random((1, 1, 32, 32)) * 4000).astype(np.uint16)),
        ("image_2", (rng.random((1, 2, 32, 32)) * 100).astype(np.float32)),
        ("image_3", (rng.random((1, 1, 16, 16)) + 1j).astype(np.complex64)),
    ]
    for index, (group, data) in enumerate(images):
        img = ismrmrd.Image.from_array(data, transpose=False)
        img.image_index = index + 1
        img.slice = 7
        img.image_type = ismrmrd.IMTYPE_COMPLEX if data.dtype.kind == "c" else ismrmrd.IMTYPE_MAGNITUDE
        img.attribute_string = ismrmrd.Meta({"SequenceDescription": "pdfs_tse"}).serialize()
        ds.append_image(group, img)
    ds.close()


def fastmri(args):
    """A fastMRI knee file as the published set has them, made from noise-free slices
    (`.npy`, one per slice): each slice seen by `--coils` coils of smooth complex
    sensitivity (0: the single-coil layout), complex Gaussian noise of `--sigma` per coil,
    a readout oversampled twofold and 8 more phase-encoding columns than the
    reconstruction; `reconstruction_rss` / `_esc` made from the k-space by fastMRI's own
    transforms. `--layout` breaks one thing for the error tests."""
    import h5py

    rng = np.random.default_rng(args.seed)
    slices = [np.load(f).astype(np.float64) for f in args.images]
    h, w = slices[0].shape
    H, W = 2 * h, w + 8
    yy, xx = np.mgrid[0:H, 0:W]
    coils = max(args.coils, 1)
    sens = []
    for c in range(coils):
        angle = 2 * np.pi * c / coils
        cy, cx = H / 2 + 0.4 * H * np.sin(angle), W / 2 + 0.6 * W * np.cos(angle)
        mag = np.exp(-((yy - cy) ** 2 / (0.5 * H) ** 2 + (xx - cx) ** 2 / (0.7 * W) ** 2))
        sens.append(mag * np.exp(1j * (angle + 0.002 * (yy + xx))) if args.coils else np.ones((H, W)))

    def fft2c(x):
        return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x), norm="ortho"))

    def ifft2c(k):
        return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))

    kspace, recon = [], []
    for img in slices:
        full = np.zeros((H, W))
        top, left = (H - h) // 2, (W - w) // 2
        full[top:top + h, left:left + w] = img
        k = []
        for c in range(coils):
            noise = args.sigma * (rng.standard_normal((H, W)) + 1j * rng.standard_normal((H, W)))
            k.append(fft2c(full * sens[c] + noise))
        k = np.stack(k).astype(np.complex64)
        image = np.sqrt((np.abs(ifft2c(k.astype(np.complex128))) ** 2).sum(axis=0))
        recon.append(image[top:top + h, left:left + w].astype(np.float32))
        kspace.append(k if args.coils else k[0])
    kspace, recon = np.stack(kspace), np.stack(recon)
    if args.layout == "float-kspace":
        kspace = np.abs(kspace).astype(np.float32)
    header = (
        "<?xml version=\"1.0\"?><ismrmrdHeader xmlns=\"http://www.ismrm.org/ISMRMRD\">"
        "<encoding><encodedSpace><matrixSize><x>%d</x><y>%d</y><z>1</z></matrixSize>"
        "</encodedSpace><reconSpace><matrixSize><x>%d</x><y>%d</y><z>1</z></matrixSize>"
        "</reconSpace></encoding></ismrmrdHeader>" % (H, W, h, w)
    )
    with h5py.File(args.out, "w") as f:
        f.create_dataset("kspace", data=kspace)
        if not args.no_recon:
            f.create_dataset("reconstruction_rss" if args.coils else "reconstruction_esc", data=recon)
        if args.layout != "no-header":
            f.create_dataset("ismrmrd_header", data=header)
        if args.layout != "no-acquisition":
            f.attrs["acquisition"] = args.acquisition
        f.attrs["patient_id"] = args.patient
        f.attrs["max"] = float(recon.max())
        f.attrs["norm"] = float(np.linalg.norm(recon))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("out")
    m.add_argument("--no-metadata", action="store_true")
    m.add_argument("--rank3", action="store_true")
    m.add_argument("--size-multiple", type=int, default=4)
    m.add_argument("--fail-unless-64", action="store_true")
    m.add_argument("--contrast", choices=["pd", "pdfs"], default="pdfs")
    m.add_argument("--guided", action="store_true", help="a second input `guide`: the partner contrast")
    m.add_argument("--copy-guide", action="store_true", help="(guided) the output is the guide, not the image")
    m.add_argument("--noise-input", type=int, default=0, help="an input `noise` [N, K] of K levels a slice")
    m.add_argument("--noise-metadata", type=int, default=None, help="crossdenoise.noise_levels (default: K)")
    m.add_argument("--noise-coils", type=int, default=1, help="crossdenoise.noise_coils: served with a noise map of L coils")
    h = sub.add_parser("mrd-h5")
    h.add_argument("out")
    d = sub.add_parser("denoise")
    d.add_argument("model")
    d.add_argument("input")
    d.add_argument("output")
    s = sub.add_parser("dicom-series")
    s.add_argument("dir")
    s.add_argument("kind", choices=["u12", "s16"])
    s.add_argument("slices", nargs="+")
    s.add_argument("--frame", help="FrameOfReferenceUID (default: a new one)")
    s.add_argument("--description", default="PD_FS_COR")
    s.add_argument("--protocol", default="knee_pdfs_cor", help="ProtocolName")
    s.add_argument("--study", help="StudyInstanceUID (default: a new one)")
    s.add_argument("--offset", type=float, default=0.0, help="slice positions moved by (mm)")
    s.add_argument("--series", help="SeriesInstanceUID (default: a new one)")
    s.add_argument("--patient", default="PH0001", help="PatientID")
    s.add_argument("--first-number", type=int, default=0, help="slices numbered and placed from this one")
    s.add_argument("--images-in-acquisition", type=int, help="ImagesInAcquisition (default: none)")
    s.add_argument("--phase-encoding", choices=["ROW", "COL"], help="InPlanePhaseEncodingDirection (default: none)")
    s.add_argument("--acceleration", type=float, help="ParallelReductionFactorInPlane and ParallelAcquisition (default: none)")
    c = sub.add_parser("dicom-compressed")
    c.add_argument("out")
    e = sub.add_parser("dicom-enhanced")
    e.add_argument("out")
    e.add_argument("slices", nargs="+")
    e.add_argument("--description", default="PD_TSE_FS_COR")
    e.add_argument("--sop-class", choices=["enhanced", "sc"], default="enhanced")
    z = sub.add_parser("dicom-compress")
    z.add_argument("syntax", choices=["rle", "j2k", "j2k-lossy"])
    z.add_argument("outdir")
    z.add_argument("files", nargs="+")
    r = sub.add_parser("dicom-dump")
    r.add_argument("files", nargs="+")
    r.add_argument("output")
    k = sub.add_parser("check-model")
    k.add_argument("model")
    t = sub.add_parser("triton-check")
    t.add_argument("config")
    f = sub.add_parser("fastmri")
    f.add_argument("out")
    f.add_argument("images", nargs="+", help="noise-free slices (.npy), one per slice")
    f.add_argument("--acquisition", default="CORPD_FBK")
    f.add_argument("--coils", type=int, default=4, help="0: the single-coil layout")
    f.add_argument("--sigma", type=float, default=0.02)
    f.add_argument("--patient", default="P0001")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--no-recon", action="store_true", help="no reconstruction dataset (the test split)")
    f.add_argument("--layout", choices=["published", "float-kspace", "no-header", "no-acquisition"], default="published")
    args = p.parse_args()
    {
        "make-model": make_model,
        "denoise": denoise,
        "dicom-series": dicom_series,
        "dicom-compressed": dicom_compressed,
        "dicom-compress": dicom_compress,
        "dicom-enhanced": dicom_enhanced,
        "dicom-dump": dicom_dump,
        "check-model": check_model,
        "triton-check": triton_check,
        "mrd-h5": mrd_h5,
        "fastmri": fastmri,
    }[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
