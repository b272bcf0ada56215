//! The libraries Redis loads into Lua besides the standard ones, with Redis's behaviour:
//! `bit` (LuaBitOp), `cjson` (lua-cjson 2.1) and `cmsgpack` (lua-cmsgpack). Our own Rust:
//! no maintained crate reproduces their exact encodings and error texts.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::{raise_positioned, Run};

type Result<T> = mlua::Result<T>;

/// lua-cjson's settings that scripts may change (reset for every script).
#[derive(Clone, Copy)]
pub struct CjsonConfig {
    pub precision: usize,
    pub encode_max_depth: usize,
    pub decode_max_depth: usize,
    pub sparse_convert: bool,
    pub sparse_ratio: i64,
    pub sparse_safe: i64,
}

impl Default for CjsonConfig {
    fn default() -> Self {
        CjsonConfig {
            precision: 14,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        Value::String(s) => s.to_str().ok()?.trim().parse().ok(),
        _ => None,
    }
}

use rockraft_resp::reply::format_g;

// ---------------------------------------------------------------------------------------
// bit

type Unary = (&'static str, fn(i32) -> i32);
type Binary = (&'static str, fn(i32, i32) -> i32);
type Shift = (&'static str, fn(i32, u32) -> i32);

fn tobit(x: f64) -> i32 {
    // LuaBitOp's conversion: round to an integer, keep its low 32 bits.
    (x + 6_755_399_441_055_744.0).to_bits() as u32 as i32
}

pub fn bit(lua: &Lua, state: &Rc<RefCell<Run>>) -> Result<Table> {
    let t = lua.create_table()?;
    let arg = move |lua: &Lua,
                    st: &Rc<RefCell<Run>>,
                    args: &MultiValue,
                    i: usize,
                    name: &str|
          -> Result<i32> {
        match args.get(i).and_then(|v| match v {
            Value::String(_) => None,
            v => number(v),
        }) {
            Some(n) => Ok(tobit(n)),
            None => {
                let got = args.get(i).map_or("no value", type_name);
                Err(raise_positioned(
                    lua,
                    st,
                    &format!(
                        "bad argument #{} to '{name}' (number expected, got {got})",
                        i + 1
                    ),
                ))
            }
        }
    };
    let unary: [Unary; 3] = [
        ("tobit", |x| x),
        ("bnot", |x| !x),
        ("bswap", |x| x.swap_bytes()),
    ];
    for (name, f) in unary {
        let st = state.clone();
        t.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                Ok(f64::from(f(arg(lua, &st, &args, 0, name)?)))
            })?,
        )?;
    }
    let fold: [Binary; 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, f) in fold {
        let st = state.clone();
        t.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let mut acc = arg(lua, &st, &args, 0, name)?;
                for i in 1..args.len() {
                    acc = f(acc, arg(lua, &st, &args, i, name)?);
                }
                Ok(f64::from(acc))
            })?,
        )?;
    }
    let shifts: [Shift; 5] = [
        ("lshift", |x, n| ((x as u32) << n) as i32),
        ("rshift", |x, n| ((x as u32) >> n) as i32),
        ("arshift", |x, n| x >> n),
        ("rol", |x, n| (x as u32).rotate_left(n) as i32),
        ("ror", |x, n| (x as u32).rotate_right(n) as i32),
    ];
    for (name, f) in shifts {
        let st = state.clone();
        t.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let x = arg(lua, &st, &args, 0, name)?;
                let n = arg(lua, &st, &args, 1, name)? as u32 & 31;
                Ok(f64::from(f(x, n)))
            })?,
        )?;
    }
    {
        let st = state.clone();
        t.raw_set(
            "tohex",
            lua.create_function(move |lua, args: MultiValue| {
                let x = arg(lua, &st, &args, 0, "tohex")? as u32;
                let mut n = if args.len() > 1 && !matches!(args.get(1), Some(Value::Nil)) {
                    arg(lua, &st, &args, 1, "tohex")?
                } else {
                    8
                };
                let upper = n < 0;
                if upper {
                    n = -n;
                }
                let n = n.min(8) as usize;
                let s = if upper {
                    format!("{x:08X}")
                } else {
                    format!("{x:08x}")
                };
                Ok(s[8 - n..].to_string())
            })?,
        )?;
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// cjson

fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

struct Encoder<'a> {
    lua: &'a Lua,
    state: &'a Rc<RefCell<Run>>,
    cfg: CjsonConfig,
}

impl Encoder<'_> {
    fn fail(&self, v: &Value, reason: &str) -> mlua::Error {
        raise_positioned(
            self.lua,
            self.state,
            &format!("Cannot serialise {}: {reason}", type_name(v)),
        )
    }

    fn number(&self, out: &mut Vec<u8>, v: &Value, n: f64) -> Result<()> {
        if n.is_nan() || n.is_infinite() {
            return Err(self.fail(v, "must not be NaN or Inf"));
        }
        out.extend_from_slice(format_g(n, self.cfg.precision).as_bytes());
        Ok(())
    }

    /// The array length of `t` (lua-cjson's `lua_array_length`), or None for an object.
    fn array_length(&self, t: &Table, v: &Value) -> Result<Option<usize>> {
        let (mut max, mut items) = (0f64, 0i64);
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, _) = pair?;
            match k {
                Value::Number(k) if k != 0.0 && k.floor() == k && k >= 1.0 => {
                    max = max.max(k);
                    items += 1;
                }
                Value::Integer(k) if k >= 1 => {
                    max = max.max(k as f64);
                    items += 1;
                }
                _ => return Ok(None),
            }
        }
        let max_i = max as i64;
        if self.cfg.sparse_ratio > 0
            && max_i > items * self.cfg.sparse_ratio
            && max_i > self.cfg.sparse_safe
        {
            if !self.cfg.sparse_convert {
                return Err(self.fail(v, "excessively sparse array"));
            }
            return Ok(None);
        }
        Ok((max_i > 0).then_some(max_i as usize))
    }

    fn value(&self, out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<()> {
        match v {
            Value::String(s) => json_string(out, &s.as_bytes()),
            Value::Number(n) => self.number(out, v, *n)?,
            Value::Integer(i) => self.number(out, v, *i as f64)?,
            Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
            Value::Table(t) => {
                let depth = depth + 1;
                if depth > self.cfg.encode_max_depth {
                    return Err(raise_positioned(
                        self.lua,
                        self.state,
                        &format!("Cannot serialise, excessive nesting ({depth})"),
                    ));
                }
                match self.array_length(t, v)? {
                    Some(n) => {
                        out.push(b'[');
                        for i in 1..=n {
                            if i > 1 {
                                out.push(b',');
                            }
                            self.value(out, &t.raw_get::<Value>(i)?, depth)?;
                        }
                        out.push(b']');
                    }
                    None => {
                        out.push(b'{');
                        let mut first = true;
                        for pair in t.clone().pairs::<Value, Value>() {
                            let (k, val) = pair?;
                            if !first {
                                out.push(b',');
                            }
                            first = false;
                            match &k {
                                Value::Number(n) => {
                                    out.push(b'"');
                                    self.number(out, &k, *n)?;
                                    out.extend_from_slice(b"\":");
                                }
                                Value::Integer(n) => {
                                    out.push(b'"');
                                    self.number(out, &k, *n as f64)?;
                                    out.extend_from_slice(b"\":");
                                }
                                Value::String(s) => {
                                    json_string(out, &s.as_bytes());
                                    out.push(b':');
                                }
                                _ => {
                                    return Err(
                                        self.fail(&k, "table key must be a number or string")
                                    )
                                }
                            }
                            self.value(out, &val, depth)?;
                        }
                        out.push(b'}');
                    }
                }
            }
            other => return Err(self.fail(other, "type not supported")),
        }
        Ok(())
    }
}

struct Decoder<'a> {
    lua: &'a Lua,
    state: &'a Rc<RefCell<Run>>,
    data: &'a [u8],
    pos: usize,
    max_depth: usize,
}

#[derive(Debug)]
enum Token {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Token {
    fn name(&self) -> &'static str {
        match self {
            Token::ObjBegin => "T_OBJ_BEGIN",
            Token::ObjEnd => "T_OBJ_END",
            Token::ArrBegin => "T_ARR_BEGIN",
            Token::ArrEnd => "T_ARR_END",
            Token::Str(_) => "T_STRING",
            Token::Num(_) => "T_NUMBER",
            Token::Bool(_) => "T_BOOLEAN",
            Token::Null => "T_NULL",
            Token::Colon => "T_COLON",
            Token::Comma => "T_COMMA",
            Token::End => "T_END",
            Token::Error(e) => e,
        }
    }
}

impl Decoder<'_> {
    fn fail(&self, expected: &str, found: &Token, at: usize) -> mlua::Error {
        raise_positioned(
            self.lua,
            self.state,
            &format!(
                "Expected {expected} but found {} at character {}",
                found.name(),
                at + 1
            ),
        )
    }

    /// The next token and where it starts.
    fn next(&mut self) -> (Token, usize) {
        while self.pos < self.data.len()
            && matches!(self.data[self.pos], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.pos += 1;
        }
        let at = self.pos;
        let Some(&c) = self.data.get(self.pos) else {
            return (Token::End, at);
        };
        let single = match c {
            b'{' => Some(Token::ObjBegin),
            b'}' => Some(Token::ObjEnd),
            b'[' => Some(Token::ArrBegin),
            b']' => Some(Token::ArrEnd),
            b':' => Some(Token::Colon),
            b',' => Some(Token::Comma),
            0 => return (Token::End, at),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, at);
        }
        let rest = &self.data[self.pos..];
        if c == b'"' {
            return (self.string(), at);
        }
        if c == b'-' || c.is_ascii_digit() {
            return (self.number(), at);
        }
        for (word, tok) in [
            (&b"true"[..], Token::Bool(true)),
            (b"false", Token::Bool(false)),
            (b"null", Token::Null),
        ] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return (tok, at);
            }
        }
        let lower: Vec<u8> = rest
            .iter()
            .take(4)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if c == b'+' || lower.starts_with(b"inf") || lower.starts_with(b"nan") {
            return (self.number(), at);
        }
        (Token::Error("invalid token"), at)
    }

    /// A number as `strtod` reads it: lua-cjson (as Redis builds it) also takes leading
    /// zeros, hexadecimal, a leading `+`, `inf` and `nan`.
    fn number(&mut self) -> Token {
        let rest = &self.data[self.pos..];
        let (sign, body) = match rest.first() {
            Some(b'-') => (-1.0, &rest[1..]),
            Some(b'+') => (1.0, &rest[1..]),
            _ => (1.0, rest),
        };
        let signed = rest.len() - body.len();
        let lower: Vec<u8> = body
            .iter()
            .take(8)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        for (word, value) in [
            (&b"infinity"[..], f64::INFINITY),
            (b"inf", f64::INFINITY),
            (b"nan", f64::NAN),
        ] {
            if lower.starts_with(word) {
                self.pos += signed + word.len();
                return Token::Num(sign * value);
            }
        }
        if lower.starts_with(b"0x") {
            let digits = body[2..]
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            if digits > 0 {
                let text = std::str::from_utf8(&body[2..2 + digits]).unwrap_or("0");
                let v = u128::from_str_radix(text, 16).map_or(f64::INFINITY, |v| v as f64);
                self.pos += signed + 2 + digits;
                return Token::Num(sign * v);
            }
        }
        let mut len = body.iter().take_while(|c| c.is_ascii_digit()).count();
        let int_digits = len;
        let mut frac_digits = 0;
        if body.get(len) == Some(&b'.') {
            frac_digits = body[len + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            len += 1 + frac_digits;
        }
        if int_digits + frac_digits == 0 {
            return Token::Error("invalid number");
        }
        if matches!(body.get(len), Some(b'e' | b'E')) {
            let mut e = len + 1;
            if matches!(body.get(e), Some(b'+' | b'-')) {
                e += 1;
            }
            let exp_digits = body[e..].iter().take_while(|c| c.is_ascii_digit()).count();
            if exp_digits > 0 {
                len = e + exp_digits;
            }
        }
        match std::str::from_utf8(&body[..len])
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
        {
            Some(n) => {
                self.pos += signed + len;
                Token::Num(sign * n)
            }
            None => Token::Error("invalid number"),
        }
    }

    fn string(&mut self) -> Token {
        let mut out = Vec::new();
        self.pos += 1;
        loop {
            let Some(&c) = self.data.get(self.pos) else {
                return Token::Error("unexpected end of string");
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return Token::Str(out);
                }
                b'\\' => {
                    let Some(&e) = self.data.get(self.pos + 1) else {
                        return Token::Error("unexpected end of string");
                    };
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        _ => None,
                    };
                    if let Some(s) = simple {
                        out.push(s);
                        self.pos += 2;
                        continue;
                    }
                    if e != b'u' {
                        return Token::Error("invalid escape code");
                    }
                    let hex = |at: usize| -> Option<u32> {
                        let h = self.data.get(at..at + 4)?;
                        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
                    };
                    let Some(mut cp) = hex(self.pos + 2) else {
                        return Token::Error("invalid unicode escape code");
                    };
                    let mut used = 6;
                    if (0xd800..0xdc00).contains(&cp) {
                        let low = (self.data.get(self.pos + 6..self.pos + 8) == Some(b"\\u"))
                            .then(|| hex(self.pos + 8))
                            .flatten();
                        match low {
                            Some(low) if (0xdc00..0xe000).contains(&low) => {
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                                used = 12;
                            }
                            _ => return Token::Error("invalid unicode escape code"),
                        }
                    } else if (0xdc00..0xe000).contains(&cp) {
                        return Token::Error("invalid unicode escape code");
                    }
                    let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    self.pos += used;
                }
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn value(&mut self, tok: Token, at: usize, depth: usize) -> Result<Value> {
        Ok(match tok {
            Token::Str(s) => Value::String(self.lua.create_string(&s)?),
            Token::Num(n) => Value::Number(n),
            Token::Bool(b) => Value::Boolean(b),
            Token::Null => Value::LightUserData(LightUserData(std::ptr::null_mut())),
            Token::ObjBegin | Token::ArrBegin => {
                let depth = depth + 1;
                if depth > self.max_depth {
                    return Err(raise_positioned(
                        self.lua,
                        self.state,
                        &format!(
                            "Found too many nested data structures ({depth}) at character {}",
                            at + 1
                        ),
                    ));
                }
                let t = self.lua.create_table()?;
                if matches!(tok, Token::ObjBegin) {
                    let (mut tok, mut at) = self.next();
                    if matches!(tok, Token::ObjEnd) {
                        return Ok(Value::Table(t));
                    }
                    loop {
                        let Token::Str(key) = tok else {
                            return Err(self.fail("object key string", &tok, at));
                        };
                        let (colon, cat) = self.next();
                        if !matches!(colon, Token::Colon) {
                            return Err(self.fail("colon", &colon, cat));
                        }
                        let (vt, vat) = self.next();
                        let v = self.value(vt, vat, depth)?;
                        t.raw_set(self.lua.create_string(&key)?, v)?;
                        let (sep, sat) = self.next();
                        match sep {
                            Token::ObjEnd => return Ok(Value::Table(t)),
                            Token::Comma => (tok, at) = self.next(),
                            other => return Err(self.fail("comma or object end", &other, sat)),
                        }
                    }
                }
                let (mut tok, mut at) = self.next();
                if matches!(tok, Token::ArrEnd) {
                    return Ok(Value::Table(t));
                }
                let mut i = 1;
                loop {
                    let v = self.value(tok, at, depth)?;
                    t.raw_set(i, v)?;
                    i += 1;
                    let (sep, sat) = self.next();
                    match sep {
                        Token::ArrEnd => return Ok(Value::Table(t)),
                        Token::Comma => (tok, at) = self.next(),
                        other => return Err(self.fail("comma or array end", &other, sat)),
                    }
                }
            }
            other => return Err(self.fail("value", &other, at)),
        })
    }
}

pub fn cjson(lua: &Lua, state: &Rc<RefCell<Run>>) -> Result<Table> {
    let t = lua.create_table()?;
    {
        let st = state.clone();
        t.raw_set(
            "encode",
            lua.create_function(move |lua, args: MultiValue| {
                if args.len() != 1 {
                    return Err(raise_positioned(
                        lua,
                        &st,
                        "bad argument #1 to 'encode' (expected one argument)",
                    ));
                }
                let cfg = st.borrow().cjson;
                let enc = Encoder {
                    lua,
                    state: &st,
                    cfg,
                };
                let mut out = Vec::new();
                enc.value(&mut out, &args[0], 0)?;
                lua.create_string(&out)
            })?,
        )?;
    }
    {
        let st = state.clone();
        t.raw_set(
            "decode",
            lua.create_function(move |lua, args: MultiValue| {
                if args.len() != 1 {
                    return Err(raise_positioned(
                        lua,
                        &st,
                        "bad argument #1 to 'decode' (expected 1 argument)",
                    ));
                }
                let data = match &args[0] {
                    Value::String(s) => s.as_bytes().to_vec(),
                    Value::Number(n) => format_g(*n, 14).into_bytes(),
                    other => {
                        return Err(raise_positioned(
                            lua,
                            &st,
                            &format!(
                                "bad argument #1 to 'decode' (string expected, got {})",
                                type_name(other)
                            ),
                        ))
                    }
                };
                if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
                    return Err(raise_positioned(
                        lua,
                        &st,
                        "JSON parser does not support UTF-16 or UTF-32",
                    ));
                }
                let max_depth = st.borrow().cjson.decode_max_depth;
                let mut dec = Decoder {
                    lua,
                    state: &st,
                    data: &data,
                    pos: 0,
                    max_depth,
                };
                let (tok, at) = dec.next();
                let v = dec.value(tok, at, 0)?;
                let (end, eat) = dec.next();
                if !matches!(end, Token::End) {
                    return Err(dec.fail("the end", &end, eat));
                }
                Ok(v)
            })?,
        )?;
    }
    t.raw_set(
        "null",
        Value::LightUserData(LightUserData(std::ptr::null_mut())),
    )?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    // The settings (each returns the value it is now).
    type Field = fn(&mut CjsonConfig) -> &mut usize;
    type Setting = (&'static str, Field, fn(usize) -> usize);
    let numeric: [Setting; 3] = [
        (
            "encode_number_precision",
            |c| &mut c.precision,
            |n| n.clamp(1, 14),
        ),
        (
            "encode_max_depth",
            |c| &mut c.encode_max_depth,
            |n| n.max(1),
        ),
        (
            "decode_max_depth",
            |c| &mut c.decode_max_depth,
            |n| n.max(1),
        ),
    ];
    for (name, field, bound) in numeric {
        let st = state.clone();
        t.raw_set(
            name,
            lua.create_function(move |_, n: Option<f64>| {
                let mut s = st.borrow_mut();
                let value = field(&mut s.cjson);
                if let Some(n) = n {
                    *value = bound(n as usize);
                }
                Ok(*value as f64)
            })?,
        )?;
    }
    {
        let st = state.clone();
        t.raw_set(
            "encode_sparse_array",
            lua.create_function(
                move |_, (convert, ratio, safe): (Option<bool>, Option<f64>, Option<f64>)| {
                    let mut s = st.borrow_mut();
                    if let Some(c) = convert {
                        s.cjson.sparse_convert = c;
                    }
                    if let Some(r) = ratio {
                        s.cjson.sparse_ratio = r as i64;
                    }
                    if let Some(v) = safe {
                        s.cjson.sparse_safe = v as i64;
                    }
                    Ok((
                        s.cjson.sparse_convert,
                        s.cjson.sparse_ratio as f64,
                        s.cjson.sparse_safe as f64,
                    ))
                },
            )?,
        )?;
    }
    for name in [
        "encode_keep_buffer",
        "encode_invalid_numbers",
        "decode_invalid_numbers",
    ] {
        t.raw_set(
            name,
            lua.create_function(|_, v: Option<Value>| Ok(v.unwrap_or(Value::Boolean(false))))?,
        )?;
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// cmsgpack

const MAX_NESTING: usize = 16;

fn mp_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        let n = n as u64;
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&n.to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_number(out: &mut Vec<u8>, n: f64) {
    if n.is_finite() && (n as i64) as f64 == n {
        mp_int(out, n as i64);
    } else if (n as f32) as f64 == n || n.is_nan() {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_len(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, b16: u8, b32: u8) {
    if n < fix_max {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn mp_value(out: &mut Vec<u8>, v: &Value, level: usize) -> Result<()> {
    match v {
        Value::String(s) => {
            let s = s.as_bytes();
            let n = s.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else if n <= 0xff {
                out.extend_from_slice(&[0xd9, n as u8]);
            } else if n <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(&s);
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Number(n) => mp_number(out, *n),
        Value::Integer(i) => mp_int(out, *i),
        Value::Table(t) if level < MAX_NESTING => {
            // An array when its keys are exactly 1..n (lua-cmsgpack's `table_is_an_array`).
            let (mut count, mut max) = (0usize, 0f64);
            let mut array = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, _) = pair?;
                match number(&k) {
                    Some(n) if n > 0.0 && n.floor() == n => {
                        max = max.max(n);
                        count += 1;
                    }
                    _ => {
                        array = false;
                        break;
                    }
                }
            }
            if array && max == count as f64 {
                mp_len(out, count, 0x90, 16, 0xdc, 0xdd);
                for i in 1..=count {
                    mp_value(out, &t.raw_get::<Value>(i)?, level + 1)?;
                }
            } else {
                let pairs: Vec<(Value, Value)> =
                    t.clone().pairs::<Value, Value>().collect::<Result<_>>()?;
                mp_len(out, pairs.len(), 0x80, 16, 0xde, 0xdf);
                for (k, v) in &pairs {
                    mp_value(out, k, level + 1)?;
                    mp_value(out, v, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

struct Unpacker<'a> {
    lua: &'a Lua,
    data: &'a [u8],
    pos: usize,
}

enum UnpackError {
    Missing,
    Bad,
    Lua(mlua::Error),
}

impl From<mlua::Error> for UnpackError {
    fn from(e: mlua::Error) -> Self {
        UnpackError::Lua(e)
    }
}

impl Unpacker<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], UnpackError> {
        let s = self
            .data
            .get(self.pos..self.pos + n)
            .ok_or(UnpackError::Missing)?;
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> std::result::Result<u64, UnpackError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }

    fn str(&mut self, n: usize) -> std::result::Result<Value, UnpackError> {
        let s = self.take(n)?.to_vec();
        Ok(Value::String(self.lua.create_string(&s)?))
    }

    fn array(&mut self, n: usize) -> std::result::Result<Value, UnpackError> {
        let t = self.lua.create_table()?;
        for i in 1..=n {
            let v = self.value()?;
            t.raw_set(i, v)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, n: usize) -> std::result::Result<Value, UnpackError> {
        let t = self.lua.create_table()?;
        for _ in 0..n {
            let k = self.value()?;
            let v = self.value()?;
            if !matches!(k, Value::Nil) {
                t.raw_set(k, v)?;
            }
        }
        Ok(Value::Table(t))
    }

    fn value(&mut self) -> std::result::Result<Value, UnpackError> {
        let c = self.take(1)?[0];
        Ok(match c {
            0x00..=0x7f => Value::Number(f64::from(c)),
            0x80..=0x8f => return self.map(usize::from(c & 0x0f)),
            0x90..=0x9f => return self.array(usize::from(c & 0x0f)),
            0xa0..=0xbf => return self.str(usize::from(c & 0x1f)),
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 | 0xd9 => {
                let n = self.be(1)? as usize;
                return self.str(n);
            }
            0xc5 | 0xda => {
                let n = self.be(2)? as usize;
                return self.str(n);
            }
            0xc6 | 0xdb => {
                let n = self.be(4)? as usize;
                return self.str(n);
            }
            0xca => Value::Number(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Value::Number(f64::from_bits(self.be(8)?)),
            0xcc => Value::Number(self.be(1)? as f64),
            0xcd => Value::Number(self.be(2)? as f64),
            0xce => Value::Number(self.be(4)? as f64),
            0xcf => Value::Number(self.be(8)? as f64),
            0xd0 => Value::Number(f64::from(self.be(1)? as u8 as i8)),
            0xd1 => Value::Number(f64::from(self.be(2)? as u16 as i16)),
            0xd2 => Value::Number(f64::from(self.be(4)? as u32 as i32)),
            0xd3 => Value::Number(self.be(8)? as i64 as f64),
            0xdc => {
                let n = self.be(2)? as usize;
                return self.array(n);
            }
            0xdd => {
                let n = self.be(4)? as usize;
                return self.array(n);
            }
            0xde => {
                let n = self.be(2)? as usize;
                return self.map(n);
            }
            0xdf => {
                let n = self.be(4)? as usize;
                return self.map(n);
            }
            0xe0..=0xff => Value::Number(f64::from(c as i8)),
            _ => return Err(UnpackError::Bad),
        })
    }
}

pub fn cmsgpack(lua: &Lua, state: &Rc<RefCell<Run>>) -> Result<Table> {
    let t = lua.create_table()?;
    {
        let st = state.clone();
        t.raw_set(
            "pack",
            lua.create_function(move |lua, args: MultiValue| {
                if args.is_empty() {
                    return Err(raise_positioned(lua, &st, "MessagePack pack needs input."));
                }
                let mut out = Vec::new();
                for a in args.iter() {
                    mp_value(&mut out, a, 0)?;
                }
                lua.create_string(&out)
            })?,
        )?;
    }
    // unpack(data), unpack_one(data [, offset]), unpack_limit(data, limit [, offset]).
    let unpack = |lua: &Lua,
                  st: &Rc<RefCell<Run>>,
                  data: &[u8],
                  limit: usize,
                  offset: usize,
                  with_offset: bool|
     -> Result<MultiValue> {
        let mut u = Unpacker {
            lua,
            data,
            pos: offset,
        };
        let mut values = Vec::new();
        while u.pos < data.len() && (limit == 0 || values.len() < limit) {
            match u.value() {
                Ok(v) => values.push(v),
                Err(UnpackError::Missing) => {
                    return Err(raise_positioned(lua, st, "Missing bytes in input."))
                }
                Err(UnpackError::Bad) => {
                    return Err(raise_positioned(lua, st, "Bad data format in input."))
                }
                Err(UnpackError::Lua(e)) => return Err(e),
            }
        }
        let mut out = Vec::with_capacity(values.len() + 1);
        if with_offset {
            let next = if u.pos >= data.len() {
                -1.0
            } else {
                u.pos as f64
            };
            out.push(Value::Number(next));
        }
        out.extend(values);
        Ok(MultiValue::from_iter(out))
    };
    {
        let st = state.clone();
        t.raw_set(
            "unpack",
            lua.create_function(move |lua, data: mlua::String| {
                unpack(lua, &st, &data.as_bytes(), 0, 0, false)
            })?,
        )?;
    }
    {
        let st = state.clone();
        t.raw_set(
            "unpack_one",
            lua.create_function(move |lua, (data, offset): (mlua::String, Option<f64>)| {
                unpack(
                    lua,
                    &st,
                    &data.as_bytes(),
                    1,
                    offset.unwrap_or(0.0).max(0.0) as usize,
                    true,
                )
            })?,
        )?;
    }
    {
        let st = state.clone();
        t.raw_set(
            "unpack_limit",
            lua.create_function(
                move |lua, (data, limit, offset): (mlua::String, f64, Option<f64>)| {
                    unpack(
                        lua,
                        &st,
                        &data.as_bytes(),
                        limit.max(0.0) as usize,
                        offset.unwrap_or(0.0).max(0.0) as usize,
                        true,
                    )
                },
            )?,
        )?;
    }
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// struct (Roberto Ierusalimschy's library as Redis bundles it: x86-64, little-endian
// native order, `long` and `size_t` of 8 bytes, alignment at most 8)

const STRUCT_MAX_INT: usize = 32;
const STRUCT_MAX_ALIGN: usize = 8;

struct Format<'a> {
    fmt: &'a [u8],
    at: usize,
    little: bool,
    align: usize,
}

impl Format<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.fmt.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    /// The number after an option, or `default` when none follows (C `int` bounds).
    fn number(&mut self, default: usize) -> std::result::Result<usize, String> {
        if !self.fmt.get(self.at).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: i32 = 0;
        while let Some(&c) = self.fmt.get(self.at).filter(|c| c.is_ascii_digit()) {
            let d = i32::from(c - b'0');
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err("integral size overflow".into());
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a as usize)
    }

    fn size(&mut self, opt: u8) -> std::result::Result<usize, String> {
        Ok(match opt {
            b'B' | b'b' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let n = self.number(4)?;
                if n > STRUCT_MAX_INT {
                    return Err(format!(
                        "integral size {n} is larger than limit of {STRUCT_MAX_INT}"
                    ));
                }
                n
            }
            _ => 0,
        })
    }

    /// Padding that aligns an item of `size` bytes at offset `len`.
    fn padding(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        size.wrapping_sub(len & size.wrapping_sub(1)) & size.wrapping_sub(1)
    }

    /// The options that are not items: endianness, alignment, spaces.
    fn control(&mut self, opt: u8, function: &str) -> std::result::Result<(), String> {
        match opt {
            b' ' => {}
            b'>' => self.little = false,
            b'<' => self.little = true,
            b'!' => {
                let a = self.number(STRUCT_MAX_ALIGN)?;
                if a == 0 || a & (a - 1) != 0 {
                    return Err(format!("alignment {a} is not a power of 2"));
                }
                self.align = a;
            }
            _ => {
                return Err(format!(
                    "bad argument #1 to '{function}' (invalid format option '{}')",
                    opt as char
                ))
            }
        }
        Ok(())
    }
}

/// `luaL_checklstring`: a string, or a number as Lua writes it.
fn lua_string(args: &MultiValue, i: usize, function: &str) -> std::result::Result<Vec<u8>, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Integer(n)) => Ok(n.to_string().into_bytes()),
        Some(Value::Number(n)) => Ok(format_g(*n, 14).into_bytes()),
        other => Err(format!(
            "bad argument #{} to '{function}' (string expected, got {})",
            i + 1,
            other.map_or("no value", type_name)
        )),
    }
}

fn lua_number(args: &MultiValue, i: usize, function: &str) -> std::result::Result<f64, String> {
    args.get(i).and_then(number).ok_or_else(|| {
        format!(
            "bad argument #{} to '{function}' (number expected, got {})",
            i + 1,
            args.get(i).map_or("no value", type_name)
        )
    })
}

fn struct_pack(args: &MultiValue) -> std::result::Result<Vec<u8>, String> {
    use crate::types::geohash::{c_to_i64, c_to_u64};
    let fmt = lua_string(args, 0, "pack")?;
    let mut f = Format {
        fmt: &fmt,
        at: 0,
        little: true,
        align: 1,
    };
    let mut out = Vec::new();
    let mut arg = 1;
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        let pad = f.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = lua_number(args, arg, "pack")?;
                arg += 1;
                let mut value = if n < 0.0 {
                    c_to_i64(n) as u64
                } else {
                    c_to_u64(n)
                };
                let mut bytes = vec![0u8; size];
                for k in 0..size {
                    let at = if f.little { k } else { size - 1 - k };
                    bytes[at] = value as u8;
                    value = value.checked_shr(8).unwrap_or(0);
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = lua_number(args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if f.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'd' => {
                let v = lua_number(args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if f.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = lua_string(args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // (The library names the argument after the string.)
                    return Err(format!(
                        "bad argument #{} to 'pack' (string too short)",
                        arg + 1
                    ));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt, "pack")?,
        }
    }
    Ok(out)
}

enum Unpacked {
    Number(f64),
    Bytes(Vec<u8>),
}

fn struct_unpack(args: &MultiValue) -> std::result::Result<(Vec<Unpacked>, usize), String> {
    let fmt = lua_string(args, 0, "unpack")?;
    let data = lua_string(args, 1, "unpack")?;
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1,
        Some(_) => crate::types::geohash::c_to_i64(lua_number(args, 2, "unpack")?) as usize,
    };
    if start == 0 {
        return Err("bad argument #3 to 'unpack' (offset must be 1 or greater)".into());
    }
    let mut pos = start - 1;
    let ld = data.len();
    let short = || "bad argument #2 to 'unpack' (data string too short)".to_string();
    let mut f = Format {
        fmt: &fmt,
        at: 0,
        little: true,
        align: 1,
    };
    let mut out = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        pos = pos.wrapping_add(f.padding(pos, opt, size));
        if !(size <= ld && pos <= ld - size) {
            return Err(short());
        }
        let bytes = &data[pos..pos + size];
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let mut l: u64 = 0;
                for k in 0..size {
                    let b = if f.little {
                        bytes[size - 1 - k]
                    } else {
                        bytes[k]
                    };
                    l = (l << 8) | u64::from(b);
                }
                let n = if opt.is_ascii_lowercase() {
                    // (x86-64 shifts by the count modulo 64.)
                    let mask = u64::MAX << ((size * 8).wrapping_sub(1) % 64);
                    if l & mask != 0 {
                        l |= mask;
                    }
                    l as i64 as f64
                } else {
                    l as f64
                };
                out.push(Unpacked::Number(n));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = bytes.try_into().expect("4 bytes");
                let v = if f.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Unpacked::Number(f64::from(v)));
            }
            b'd' => {
                let b: [u8; 8] = bytes.try_into().expect("8 bytes");
                let v = if f.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Unpacked::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let previous = match out.last() {
                        Some(Unpacked::Number(n)) => Some(*n),
                        Some(Unpacked::Bytes(b)) => std::str::from_utf8(b)
                            .ok()
                            .and_then(|s| s.trim().parse::<f64>().ok()),
                        None => None,
                    };
                    let Some(n) = previous else {
                        return Err("format 'c0' needs a previous size".into());
                    };
                    out.pop();
                    size = crate::types::geohash::c_to_u64(n) as usize;
                    if !(size <= ld && pos <= ld - size) {
                        return Err(short());
                    }
                }
                out.push(Unpacked::Bytes(data[pos..pos + size].to_vec()));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err("unfinished string in data".into());
                };
                out.push(Unpacked::Bytes(data[pos..pos + end].to_vec()));
                size = end + 1;
            }
            _ => f.control(opt, "unpack")?,
        }
        pos += size;
    }
    Ok((out, pos + 1))
}

fn struct_size(args: &MultiValue) -> std::result::Result<usize, String> {
    let fmt = lua_string(args, 0, "size")?;
    let mut f = Format {
        fmt: &fmt,
        at: 0,
        little: true,
        align: 1,
    };
    let mut pos = 0usize;
    while let Some(opt) = f.next() {
        let size = f.size(opt)?;
        pos += f.padding(pos, opt, size);
        if opt == b's' {
            return Err("bad argument #1 to 'size' (option 's' has no fixed size)".into());
        }
        if opt == b'c' && size == 0 {
            return Err("bad argument #1 to 'size' (option 'c0' has no fixed size)".into());
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, "size")?;
        }
        pos += size;
    }
    Ok(pos)
}

pub fn structlib(lua: &Lua, state: &Rc<RefCell<Run>>) -> Result<Table> {
    let t = lua.create_table()?;
    {
        let st = state.clone();
        t.raw_set(
            "pack",
            lua.create_function(move |lua, args: MultiValue| match struct_pack(&args) {
                Ok(bytes) => lua.create_string(&bytes),
                Err(e) => Err(raise_positioned(lua, &st, &e)),
            })?,
        )?;
    }
    {
        let st = state.clone();
        t.raw_set(
            "unpack",
            lua.create_function(move |lua, args: MultiValue| match struct_unpack(&args) {
                Ok((items, next)) => {
                    let mut out = Vec::with_capacity(items.len() + 1);
                    for item in items {
                        out.push(match item {
                            Unpacked::Number(n) => Value::Number(n),
                            Unpacked::Bytes(b) => Value::String(lua.create_string(&b)?),
                        });
                    }
                    out.push(Value::Number(next as f64));
                    Ok(MultiValue::from_iter(out))
                }
                Err(e) => Err(raise_positioned(lua, &st, &e)),
            })?,
        )?;
    }
    {
        let st = state.clone();
        t.raw_set(
            "size",
            lua.create_function(move |lua, args: MultiValue| match struct_size(&args) {
                Ok(n) => Ok(n as f64),
                Err(e) => Err(raise_positioned(lua, &st, &e)),
            })?,
        )?;
    }
    Ok(t)
}
