//! A restricted unpickler: the part of Python's pickle machine that PyTorch state dicts use.
//!
//! A pickle is a program for a stack machine, and its `GLOBAL` opcode can name any Python
//! callable, so reading one with a general unpickler runs whatever the file says. This one
//! knows only the callables a checkpoint needs (ordered dicts, the tensor and parameter
//! rebuild functions, storage types) and refuses any other global by name before it is
//! used. Tensors are not built here: a rebuilt tensor is a [`TensorRef`] (storage key,
//! dtype, offset, size, stride) that the archive layer checks and materialises later.
//!
//! Every container lives in one arena and values refer to it by index. Hostile pickles can
//! nest tuples a million deep or make lists contain themselves; with an arena nothing is
//! dropped recursively and cycles cannot leak or loop. Every length read from the stream is
//! checked against the bytes left before anything is allocated, so memory stays linear in
//! the size of the pickle.

use std::io::BufRead;
use std::rc::Rc;

/// Element types of the storages PyTorch writes (`torch.FloatStorage` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    fn from_storage_name(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> u64 {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    pub fn kind(self) -> tch::Kind {
        use tch::Kind;
        match self {
            Self::F64 => Kind::Double,
            Self::F32 => Kind::Float,
            Self::F16 => Kind::Half,
            Self::BF16 => Kind::BFloat16,
            Self::I64 => Kind::Int64,
            Self::I32 => Kind::Int,
            Self::I16 => Kind::Int16,
            Self::I8 => Kind::Int8,
            Self::U8 => Kind::Uint8,
            Self::Bool => Kind::Bool,
        }
    }
}

/// A storage named by a persistent id: `('storage', type, key, location, numel[, view])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    pub key: Rc<str>,
    pub dtype: Dtype,
    pub numel: u64,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// The only Python globals a state dict may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    TensorType,
    ParameterType,
    Storage(Dtype),
    /// `_codecs.encode(text, "latin1")`: how protocol 2 writes a `bytes` value.
    CodecsEncode,
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Self> {
        Some(match (module, name) {
            ("collections", "OrderedDict") => Self::OrderedDict,
            ("torch._utils", "_rebuild_tensor") => Self::RebuildTensor,
            ("torch._utils", "_rebuild_tensor_v2") => Self::RebuildTensorV2,
            ("torch._utils", "_rebuild_parameter") => Self::RebuildParameter,
            ("torch._utils", "_rebuild_parameter_with_state") => Self::RebuildParameterWithState,
            ("torch._tensor", "_rebuild_from_type_v2") => Self::RebuildFromTypeV2,
            ("torch", "Tensor") => Self::TensorType,
            ("torch.nn.parameter", "Parameter") => Self::ParameterType,
            ("_codecs", "encode") => Self::CodecsEncode,
            ("torch", s) => Self::Storage(Dtype::from_storage_name(s)?),
            _ => return None,
        })
    }
}

/// A value on the machine's stack. Containers are indices into the arena.
// Floats and bytes are carried (optimizer settings, metadata) but no tensor needs them.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// Integers wider than 64 bits, as little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Obj(usize),
    Global(Global),
    Storage(StorageRef),
    Tensor(Rc<TensorRef>),
}

#[derive(Debug)]
pub enum Obj {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    #[error("refuses the Python global {module}.{name}: a checkpoint that needs it runs code when loaded (only state dicts of tensors are read)")]
    Forbidden { module: String, name: String },
    #[error("truncated pickle (ends after {0} bytes)")]
    Truncated(u64),
    #[error("malformed pickle at byte {pos}: {what}")]
    Malformed { pos: u64, what: String },
    #[error("reading the pickle: {0}")]
    Io(#[from] std::io::Error),
}

/// The result of one pickle: its top value and the arena its containers live in.
#[derive(Debug)]
pub struct Unpickled {
    pub arena: Vec<Obj>,
    pub root: Value,
    /// Storages named by persistent ids, in the order they first appeared.
    pub storages: Vec<StorageRef>,
}

impl Unpickled {
    pub fn obj(&self, v: &Value) -> Option<&Obj> {
        match v {
            Value::Obj(i) => self.arena.get(*i),
            _ => None,
        }
    }

    /// The entries of `v` if it is a dict (plain or ordered).
    pub fn dict(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match self.obj(v)? {
            Obj::Dict(items) => Some(items),
            _ => None,
        }
    }
}

/// Runs the pickle at the reader's position, reading at most `budget` bytes.
pub fn load<R: BufRead>(input: &mut R, budget: u64) -> Result<Unpickled, PickleError> {
    Machine {
        input,
        pos: 0,
        budget,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: std::collections::HashMap::new(),
        arena: Vec::new(),
        storages: Vec::new(),
    }
    .run()
}

struct Machine<'a, R> {
    input: &'a mut R,
    pos: u64,
    budget: u64,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u32, Value>,
    arena: Vec<Obj>,
    storages: Vec<StorageRef>,
}

impl<R: BufRead> Machine<'_, R> {
    fn err<T>(&self, what: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError::Malformed {
            pos: self.pos,
            what: what.into(),
        })
    }

    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, PickleError> {
        if n > self.budget - self.pos {
            return Err(PickleError::Truncated(self.budget));
        }
        let mut buf = vec![0u8; n as usize];
        self.input
            .read_exact(&mut buf)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => PickleError::Truncated(self.pos),
                _ => PickleError::Io(e),
            })?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let v = self.bytes(N as u64)?;
        Ok(v.try_into().expect("length checked"))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let mut out = Vec::new();
        loop {
            let [b] = self.array::<1>()?;
            if b == b'\n' {
                break;
            }
            if out.len() >= 256 {
                return self.err("text line over 256 bytes");
            }
            out.push(b);
        }
        String::from_utf8(out).or_else(|_| self.err("text line is not UTF-8"))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(v) if self.marks.last().is_none_or(|&m| self.stack.len() >= m) => Ok(v),
            _ => self.err("stack underflow"),
        }
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        if self.stack.len() <= self.marks.last().copied().unwrap_or(0) {
            return self.err("stack underflow");
        }
        Ok(self.stack.last_mut().expect("checked"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        match self.marks.pop() {
            Some(m) => Ok(self.stack.split_off(m)),
            None => self.err("no mark on the stack"),
        }
    }

    fn push_obj(&mut self, obj: Obj) {
        self.arena.push(obj);
        self.stack.push(Value::Obj(self.arena.len() - 1));
    }

    fn str_of(&mut self, n: u64) -> Result<Value, PickleError> {
        let b = self.bytes(n)?;
        match String::from_utf8(b) {
            Ok(s) => Ok(Value::Str(s.into())),
            Err(_) => self.err("string is not UTF-8"),
        }
    }

    fn len_u32(&mut self) -> Result<u64, PickleError> {
        Ok(u32::from_le_bytes(self.array()?) as u64)
    }

    fn len_u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn memo_get(&mut self, i: u32) -> Result<(), PickleError> {
        match self.memo.get(&i) {
            Some(v) => {
                self.stack.push(v.clone());
                Ok(())
            }
            None => self.err(format!("memo entry {i} is not set")),
        }
    }

    fn memo_put(&mut self, i: u32) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(i, v);
        Ok(())
    }

    fn global(&mut self, module: String, name: String) -> Result<(), PickleError> {
        match Global::resolve(&module, &name) {
            Some(g) => {
                self.stack.push(Value::Global(g));
                Ok(())
            }
            None => Err(PickleError::Forbidden { module, name }),
        }
    }

    /// Appends `items` to the list or set at stack position `at`.
    fn extend(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        let target = self.top()?.clone();
        match target {
            Value::Obj(i) => match &mut self.arena[i] {
                Obj::List(l) => {
                    l.extend(items);
                    Ok(())
                }
                _ => self.err("append to something that is not a list"),
            },
            _ => self.err("append to something that is not a list"),
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("odd number of items for a dict");
        }
        let target = self.top()?.clone();
        let Value::Obj(i) = target else {
            return self.err("set items on something that is not a dict");
        };
        let Obj::Dict(d) = &mut self.arena[i] else {
            return self.err("set items on something that is not a dict");
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn tuple(&self, v: &Value) -> Option<&[Value]> {
        match v {
            Value::Obj(i) => match &self.arena[*i] {
                Obj::Tuple(t) => Some(t),
                _ => None,
            },
            _ => None,
        }
    }

    fn ints(&self, v: &Value, what: &str) -> Result<Vec<i64>, PickleError> {
        let items = match self.tuple(v) {
            Some(t) => t,
            None => return self.err(format!("tensor {what} is not a tuple")),
        };
        if items.len() > 16 {
            return self.err(format!("tensor {what} has {} dimensions", items.len()));
        }
        items
            .iter()
            .map(|x| match x {
                Value::Int(n) if *n >= 0 => Ok(*n),
                _ => self.err(format!("tensor {what} holds a value that is not a size")),
            })
            .collect()
    }

    /// Applies one of the allowed callables to its argument tuple.
    fn call(&mut self, f: Global, args: Value) -> Result<Value, PickleError> {
        let Some(a) = self.tuple(&args).map(<[Value]>::to_vec) else {
            return self.err("call arguments are not a tuple");
        };
        match (f, a.as_slice()) {
            (Global::OrderedDict, []) => {
                self.arena.push(Obj::Dict(Vec::new()));
                Ok(Value::Obj(self.arena.len() - 1))
            }
            (Global::RebuildTensorV2, [s, off, size, stride, ..])
            | (Global::RebuildTensor, [s, off, size, stride])
                if (f == Global::RebuildTensor || (6..=7).contains(&a.len())) =>
            {
                let Value::Storage(storage) = s else {
                    return self.err("tensor rebuilt from something that is not a storage");
                };
                let Value::Int(offset) = off else {
                    return self.err("tensor storage offset is not an integer");
                };
                let (size, stride) = (self.ints(size, "size")?, self.ints(stride, "stride")?);
                if size.len() != stride.len() || *offset < 0 {
                    return self.err("tensor size, stride and offset do not agree");
                }
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: storage.clone(),
                    offset: *offset,
                    size,
                    stride,
                })))
            }
            (Global::CodecsEncode, [Value::Str(text), Value::Str(codec)])
                if &**codec == "latin1" =>
            {
                match text
                    .chars()
                    .map(u8::try_from)
                    .collect::<Result<Vec<u8>, _>>()
                {
                    Ok(b) => Ok(Value::Bytes(b.into())),
                    Err(_) => self.err("latin1 text outside latin1"),
                }
            }
            (Global::RebuildParameter, [t @ Value::Tensor(_), _, _])
            | (Global::RebuildParameterWithState, [t @ Value::Tensor(_), _, _, _]) => Ok(t.clone()),
            (
                Global::RebuildFromTypeV2,
                [Value::Global(inner), Value::Global(ty), inner_args, _],
            ) if matches!(ty, Global::TensorType | Global::ParameterType)
                && matches!(inner, Global::RebuildTensorV2 | Global::RebuildParameter) =>
            {
                self.call(*inner, inner_args.clone())
            }
            (g, _) => self.err(format!(
                "unexpected call of {g:?} with {} argument(s)",
                a.len()
            )),
        }
    }

    fn persistent(&mut self, pid: Value) -> Result<Value, PickleError> {
        let parts = self.tuple(&pid).map(<[Value]>::to_vec).unwrap_or_default();
        match parts.as_slice() {
            [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), Value::Str(_location), Value::Int(numel), rest @ ..]
                if &**tag == "storage" && *numel >= 0 && rest.len() <= 1 =>
            {
                if let Some(view) = rest.first() {
                    if !matches!(view, Value::None) {
                        return self.err("storage views of the pre-1.0 format are not supported");
                    }
                }
                let s = StorageRef {
                    key: key.clone(),
                    dtype: *dtype,
                    numel: *numel as u64,
                };
                match self.storages.iter().find(|o| o.key == s.key) {
                    Some(o) if *o != s => {
                        return self.err(format!(
                            "storage {key} named twice with different types or sizes"
                        ))
                    }
                    Some(_) => {}
                    None => self.storages.push(s.clone()),
                }
                Ok(Value::Storage(s))
            }
            _ => self.err("persistent id is not a PyTorch storage"),
        }
    }

    fn run(mut self) -> Result<Unpickled, PickleError> {
        loop {
            let [op] = self.array::<1>()?;
            match op {
                0x80 => {
                    let [proto] = self.array::<1>()?;
                    if proto > 5 {
                        return self.err(format!("pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    self.array::<8>()?; // FRAME: a length hint, nothing to do
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(Unpickled {
                        arena: self.arena,
                        root,
                        storages: self.storages,
                    });
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let [v] = self.array::<1>()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.array::<1>()?[0] as u64
                    } else {
                        self.len_u32()?
                    };
                    let b = self.bytes(n)?;
                    self.stack.push(long(&b));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.stack.push(Value::Float(v));
                }
                b'I' => {
                    // Text integers of protocols 0 and 1 ("I01" and "I00" are booleans).
                    let l = self.line()?;
                    let v = match l.as_str() {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        s => match s.parse() {
                            Ok(n) => Value::Int(n),
                            Err(_) => return self.err("bad text integer"),
                        },
                    };
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.array::<1>()?[0] as u64;
                    let v = self.str_of(n)?;
                    self.stack.push(v);
                }
                b'X' => {
                    let n = self.len_u32()?;
                    let v = self.str_of(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let v = self.str_of(n)?;
                    self.stack.push(v);
                }
                // Python 2 byte strings (SHORT_BINSTRING, BINSTRING): text in old files.
                b'U' | b'T' => {
                    let n = if op == b'U' {
                        self.array::<1>()?[0] as u64
                    } else {
                        self.len_u32()?
                    };
                    let v = self.str_of(n)?;
                    self.stack.push(v);
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => self.array::<1>()?[0] as u64,
                        b'B' => self.len_u32()?,
                        _ => self.len_u64()?,
                    };
                    let b = self.bytes(n)?;
                    self.stack.push(Value::Bytes(b.into()));
                }
                b')' => self.push_obj(Obj::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Obj::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return self.err("stack underflow");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_obj(Obj::Tuple(items));
                }
                b']' | 0x8f => self.push_obj(Obj::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Obj::List(items));
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_obj(Obj::List(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend(vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend(items)?;
                }
                b'}' => self.push_obj(Obj::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Obj::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            self.global(m.to_string(), n.to_string())?
                        }
                        _ => return self.err("STACK_GLOBAL of something that is not two strings"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let Value::Global(g) = f else {
                        return self.err("call of something that is not a function");
                    };
                    let v = self.call(g, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    // NEWOBJ: cls.__new__(cls, *args); only OrderedDict() is expected.
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    match cls {
                        Value::Global(Global::OrderedDict) => {
                            let v = self.call(Global::OrderedDict, args)?;
                            self.stack.push(v);
                        }
                        _ => return self.err("NEWOBJ of a class other than OrderedDict"),
                    }
                }
                b'b' => {
                    // BUILD sets an object's state: `_metadata` on a state dict, the Python
                    // attributes of a Parameter. Neither matters for the weights.
                    let _state = self.pop()?;
                    match self.top()? {
                        Value::Obj(_) | Value::Tensor(_) => {}
                        _ => return self.err("BUILD on a value that has no state"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.stack.push(v);
                }
                b'q' => {
                    let i = self.array::<1>()?[0] as u32;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.array()?);
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.array::<1>()?[0] as u32;
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.array()?);
                    self.memo_get(i)?;
                }
                other => {
                    return self.err(format!("unsupported opcode 0x{other:02x}"));
                }
            }
        }
    }
}

/// LONG1/LONG4 payload: little-endian two's complement of any width.
fn long(b: &[u8]) -> Value {
    if b.len() <= 8 {
        let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut full = [fill; 8];
        full[..b.len()].copy_from_slice(b);
        Value::Int(i64::from_le_bytes(full))
    } else {
        Value::BigInt(b.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Unpickled, PickleError> {
        load(&mut &bytes[..], bytes.len() as u64)
    }

    #[test]
    fn forbidden_global_is_named() {
        // protocol 2: GLOBAL 'posix\nsystem\n', then a call
        let p = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
        let e = run(p).unwrap_err();
        assert!(e.to_string().contains("posix.system"), "{e}");
    }

    #[test]
    fn deep_nesting_and_cycles_are_harmless() {
        let mut p = vec![0x80, 2, b'N'];
        p.extend(std::iter::repeat_n(0x85u8, 200_000)); // TUPLE1, 200k deep
        p.extend(b"]q\x00h\x00a."); // a list that contains itself
        let u = run(&p).unwrap();
        assert!(matches!(u.root, Value::Obj(_)));
    }

    #[test]
    fn lengths_beyond_the_input_are_truncation() {
        let p = b"\x80\x02X\xff\xff\xff\x7f";
        assert!(matches!(run(p), Err(PickleError::Truncated(_))));
    }

    #[test]
    fn longs() {
        assert!(matches!(long(&[0xff]), Value::Int(-1)));
        assert!(matches!(long(&[0x00, 0x01]), Value::Int(256)));
        assert!(matches!(long(&[]), Value::Int(0)));
    }
}
