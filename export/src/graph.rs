//! A small builder for ONNX graphs over `onnx-protobuf`'s generated types.
//!
//! It only knows what the exported path needs: float32 initializers, nodes with int / float
//! attributes, symbolic-shape inputs and outputs, and metadata. Node and tensor names are
//! readable (`enc.level1.conv2`) so the graph can be read in Netron next to the Burn code.

use std::collections::BTreeMap;

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{self, Tensor as TensorType};
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// IR version 8 and opset 17: read by ONNX Runtime 1.14 and later (so every 1.2x / 1.3x),
/// by TensorRT 10's ONNX parser, and by `onnx.checker`; every op the path uses has had its
/// current semantics since well before opset 17.
pub const IR_VERSION: i64 = 8;
pub const OPSET: i64 = 17;

/// An attribute value of a node.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    op_counts: BTreeMap<String, usize>,
    /// Inputs of another shape than `[N, 1, H, W]`: their dimensions after N.
    input_dims: BTreeMap<String, Vec<usize>>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a float32 initializer; returns its name.
    pub fn initializer(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        assert_eq!(
            dims.iter().product::<usize>(),
            values.len(),
            "initializer {name}: dims {dims:?} do not match {} values",
            values.len()
        );
        let mut t = TensorProto::new();
        t.name = name.to_string();
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.data_type = DataType::FLOAT as i32;
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(t);
        name.to_string()
    }

    /// Adds a 1-D int64 initializer (the shape-like inputs of Pad and Slice); returns its
    /// name. One initializer per name: a second call with the same name reuses the first.
    pub fn initializer_i64(&mut self, name: &str, values: &[i64]) -> String {
        if !self.has_initializer(name) {
            let mut t = TensorProto::new();
            t.name = name.to_string();
            t.dims = vec![values.len() as i64];
            t.data_type = DataType::INT64 as i32;
            t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.initializers.push(t);
        }
        name.to_string()
    }

    /// Declares that input `name` is `[N, dims...]` (inputs are `[N, 1, H, W]` unless
    /// declared).
    pub fn declare_input(&mut self, name: &str, dims: &[usize]) {
        self.input_dims.insert(name.to_string(), dims.to_vec());
    }

    pub fn has_initializer(&self, name: &str) -> bool {
        self.initializers.iter().any(|t| t.name == name)
    }

    /// Adds a node named `name` with one output of the same name; returns that name.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let mut n = NodeProto::new();
        n.op_type = op.to_string();
        n.name = name.to_string();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![name.to_string()];
        n.attribute = attrs.into_iter().map(|(k, v)| attribute(k, v)).collect();
        self.nodes.push(n);
        *self.op_counts.entry(op.to_string()).or_default() += 1;
        name.to_string()
    }

    /// Renames the last node's output (the graph's output must carry the interface name).
    pub fn rename_last_output(&mut self, name: &str) {
        let last = self.nodes.last_mut().expect("a graph with nodes");
        last.output = vec![name.to_string()];
    }

    /// Turns the graph into a float16 one with float32 inputs and output: every float
    /// initializer is stored as float16, a Cast after each input feeds the graph, and a Cast
    /// turns its result back into float32 under the output's name. Half the weight bytes,
    /// and tensor core speed on a GPU; the export measures the error this costs.
    pub fn into_fp16(mut self, inputs: &[&str], outputs: &[&str]) -> Self {
        for t in &mut self.initializers {
            if t.data_type == DataType::FLOAT as i32 {
                t.raw_data = t
                    .raw_data
                    .chunks_exact(4)
                    .flat_map(|b| {
                        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        half::f16::from_f32(v).to_le_bytes()
                    })
                    .collect();
                t.data_type = DataType::FLOAT16 as i32;
            }
        }
        let half = |name: &str| format!("{name}.fp16");
        for n in &mut self.nodes {
            for i in &mut n.input {
                if inputs.contains(&i.as_str()) || outputs.contains(&i.as_str()) {
                    *i = half(i);
                }
            }
            for o in &mut n.output {
                if outputs.contains(&o.as_str()) {
                    *o = half(o);
                }
            }
        }
        let mut nodes = Vec::with_capacity(self.nodes.len() + inputs.len() + outputs.len());
        for input in inputs {
            nodes.push(cast(input, &half(input), DataType::FLOAT16));
        }
        nodes.append(&mut self.nodes);
        for output in outputs {
            nodes.push(cast(&half(output), output, DataType::FLOAT));
        }
        self.nodes = nodes;
        *self.op_counts.entry("Cast".into()).or_default() += inputs.len() + outputs.len();
        self
    }

    /// How many nodes of each op type; export prints it so a redundant node shows.
    pub fn op_counts(&self) -> &BTreeMap<String, usize> {
        &self.op_counts
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn parameter_count(&self) -> usize {
        self.initializers
            .iter()
            .map(|t| t.dims.iter().product::<i64>() as usize)
            .sum()
    }

    /// The model: float32 inputs and outputs of shape `[N, 1, H, W]` with symbolic N, H, W
    /// (shared by all of them), the graph, and the metadata properties.
    pub fn finish(
        self,
        inputs: &[&str],
        outputs: &[&str],
        graph_name: &str,
        graph_doc: &str,
        props: &[(String, String)],
    ) -> ModelProto {
        let mut graph = GraphProto::new();
        graph.name = graph_name.to_string();
        graph.doc_string = graph_doc.to_string();
        graph.node = self.nodes;
        graph.initializer = self.initializers;
        graph.input = inputs
            .iter()
            .map(|i| value_info(i, self.input_dims.get(*i).map(Vec::as_slice)))
            .collect();
        graph.output = outputs.iter().map(|o| value_info(o, None)).collect();

        let mut model = ModelProto::new();
        model.ir_version = IR_VERSION;
        let mut opset = OperatorSetIdProto::new();
        opset.domain = String::new();
        opset.version = OPSET;
        model.opset_import = vec![opset];
        model.producer_name = "crossdenoise".into();
        model.producer_version = env!("CARGO_PKG_VERSION").into();
        model.doc_string = graph_doc.to_string();
        model.graph = protobuf::MessageField::some(graph);
        model.metadata_props = props
            .iter()
            .map(|(k, v)| {
                let mut e = StringStringEntryProto::new();
                e.key = k.clone();
                e.value = v.clone();
                e
            })
            .collect();
        model
    }
}

fn cast(from: &str, to: &str, ty: DataType) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = "Cast".into();
    n.name = to.to_string();
    n.input = vec![from.to_string()];
    n.output = vec![to.to_string()];
    n.attribute = vec![attribute("to", Attr::Int(ty as i64))];
    n
}

fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_string();
    match value {
        Attr::Int(i) => {
            a.type_ = AttributeType::INT.into();
            a.i = i;
        }
        Attr::Ints(v) => {
            a.type_ = AttributeType::INTS.into();
            a.ints = v;
        }
        Attr::Float(f) => {
            a.type_ = AttributeType::FLOAT.into();
            a.f = f;
        }
    }
    a
}

/// A float32 `[N, 1, H, W]`, or `[N, dims...]` when `dims` are given.
fn value_info(name: &str, dims: Option<&[usize]>) -> ValueInfoProto {
    let dim = |v: dimension::Value| {
        let mut d = Dimension::new();
        d.value = Some(v);
        d
    };
    let mut shape = TensorShapeProto::new();
    shape.dim = match dims {
        None => vec![
            dim(dimension::Value::DimParam("N".into())),
            dim(dimension::Value::DimValue(1)),
            dim(dimension::Value::DimParam("H".into())),
            dim(dimension::Value::DimParam("W".into())),
        ],
        Some(dims) => std::iter::once(dim(dimension::Value::DimParam("N".into())))
            .chain(
                dims.iter()
                    .map(|&d| dim(dimension::Value::DimValue(d as i64))),
            )
            .collect(),
    };
    let mut tensor = TensorType::new();
    tensor.elem_type = DataType::FLOAT as i32;
    tensor.shape = protobuf::MessageField::some(shape);
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tensor));
    let mut vi = ValueInfoProto::new();
    vi.name = name.to_string();
    vi.type_ = protobuf::MessageField::some(ty);
    vi
}
