//! Geohashes as Redis computes them: a position is a 52-bit interleaved geohash (26 bits of
//! latitude in the even bits, 26 of longitude in the odd ones) over Web-Mercator's latitude
//! range, stored as a sorted-set score. A search covers its shape with the geohash box of the
//! centre and its 8 neighbours at a precision chosen from the radius, then filters members by
//! exact distance, so results (and their order) match Redis's.
//!
//! Every step uses the same floating-point operations in the same order as Redis's geohash
//! code, so scores, decoded positions and distances agree to the last bit.

pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.051_128_78;
pub const LAT_MAX: f64 = 85.051_128_78;
/// Bits per coordinate of a stored position.
pub const STEP_MAX: u8 = 26;

const D_R: f64 = std::f64::consts::PI / 180.0;
const EARTH_RADIUS_IN_METERS: f64 = 6_372_797.560_856;
const MERCATOR_MAX: f64 = 20_037_726.37;

fn deg_rad(a: f64) -> f64 {
    a * D_R
}

fn rad_deg(a: f64) -> f64 {
    a / D_R
}

/// A geohash of `step` bits per coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The hash shifted to 52 bits: the lowest score inside its box.
    pub fn align52(self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// A geohash box's extent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Area {
    pub longitude: Range,
    pub latitude: Range,
}

const LONG_RANGE: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// Spreads the 32 bits of `v` over the even bits of a u64.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `v` into a u32.
fn gather(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    x = (x | (x >> 16)) & 0x0000_0000_ffff_ffff;
    x as u32
}

/// Encodes a position at `step` bits per coordinate over the given ranges; None outside them.
pub fn encode_in(
    long_range: Range,
    lat_range: Range,
    lon: f64,
    lat: f64,
    step: u8,
) -> Option<Hash> {
    if step > 32 || step == 0 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_range.min || lat > lat_range.max || lon < long_range.min || lon > long_range.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (lon - long_range.min) / (long_range.max - long_range.min) * scale;
    Some(Hash {
        bits: spread(lat_offset as u32) | (spread(long_offset as u32) << 1),
        step,
    })
}

/// Encodes a position over Redis's (Web-Mercator) ranges.
pub fn encode(lon: f64, lat: f64, step: u8) -> Option<Hash> {
    encode_in(LONG_RANGE, LAT_RANGE, lon, lat, step)
}

/// A position's sorted-set score.
pub fn score_of(lon: f64, lat: f64) -> Option<f64> {
    encode(lon, lat, STEP_MAX).map(|h| h.align52() as f64)
}

fn decode_in(long_range: Range, lat_range: Range, hash: Hash) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let ilat = f64::from(gather(hash.bits));
    let ilon = f64::from(gather(hash.bits >> 1));
    let div = (1u64 << hash.step) as f64;
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    Some(Area {
        latitude: Range {
            min: lat_range.min + (ilat * 1.0 / div) * lat_scale,
            max: lat_range.min + ((ilat + 1.0) * 1.0 / div) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (ilon * 1.0 / div) * long_scale,
            max: long_range.min + ((ilon + 1.0) * 1.0 / div) * long_scale,
        },
    })
}

pub fn decode(hash: Hash) -> Option<Area> {
    decode_in(LONG_RANGE, LAT_RANGE, hash)
}

/// C's `(long long)d` on x86-64: truncation, and `i64::MIN` for NaN and out-of-range values.
pub fn c_to_i64(d: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if d.is_nan() || !(-TWO_63..TWO_63).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// C's `(uint64_t)d` as x86-64 compilers emit it (what Redis does with any score, even one
/// no GEOADD made): below 2^63 (NaN included) a signed truncation, from 2^63 a truncation of
/// `d - 2^63` with the top bit flipped.
pub fn c_to_u64(d: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO_63 {
        (c_to_i64(d - TWO_63) as u64) ^ (1 << 63)
    } else {
        c_to_i64(d) as u64
    }
}

/// The centre of a stored score's box: (longitude, latitude).
pub fn position_of(score: f64) -> Option<(f64, f64)> {
    let area = decode(Hash {
        bits: c_to_u64(score),
        step: STEP_MAX,
    })?;
    let lon = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

/// The standard 11-character base-32 geohash of a stored score (over latitudes ±90).
pub fn geohash_string(score: f64) -> Option<String> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = position_of(score)?;
    let bits = encode_in(
        Range {
            min: -180.0,
            max: 180.0,
        },
        Range {
            min: -90.0,
            max: 90.0,
        },
        lon,
        lat,
        26,
    )
    .map_or(0, |h| h.bits);
    Some(
        (0..11)
            .map(|i| {
                // 52 bits give 10 characters; the 11th is always '0', as in Redis.
                let idx = if i == 10 {
                    0
                } else {
                    (bits >> (52 - (i + 1) * 5)) & 0x1f
                };
                char::from(ALPHABET[idx as usize])
            })
            .collect(),
    )
}

const ODD_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;
const EVEN_BITS: u64 = 0x5555_5555_5555_5555;

/// Moves a geohash one box along one coordinate (`d` = ±1, 0: stays): longitude is in the
/// odd bits (`own` = ODD_BITS), latitude in the even ones, as Redis's geohash_move_x/y.
fn move_axis(hash: &mut Hash, d: i8, own: u64) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let mut v = hash.bits & own;
    let other = hash.bits & !own;
    let zz = !own >> shift;
    if d > 0 {
        v = v.wrapping_add(zz + 1);
    } else {
        v |= zz;
        v = v.wrapping_sub(zz + 1);
    }
    v &= own >> shift;
    hash.bits = v | other;
}

fn neighbour(hash: Hash, dx: i8, dy: i8) -> Hash {
    let mut h = hash;
    move_axis(&mut h, dx, ODD_BITS);
    move_axis(&mut h, dy, EVEN_BITS);
    h
}

/// What a search covers.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// A circle of `radius` (in the unit).
    Radius(f64),
    /// An axis-aligned box of `width` × `height` (in the unit).
    Box { width: f64, height: f64 },
}

/// A search: the centre (longitude, latitude), the shape, and metres per unit.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub lon: f64,
    pub lat: f64,
    pub shape: Shape,
    pub to_meters: f64,
}

/// Redis's `geohashEstimateStepsByRadius`.
fn steps_for_radius(mut range: f64, lat: f64) -> u8 {
    if range == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

impl Search {
    /// (min lon, min lat, max lon, max lat) of the shape (`geohashBoundingBox`).
    fn bounds(&self) -> [f64; 4] {
        let (height, width) = match self.shape {
            Shape::Radius(r) => (self.to_meters * r, self.to_meters * r),
            Shape::Box { width, height } => (
                self.to_meters * (height / 2.0),
                self.to_meters * (width / 2.0),
            ),
        };
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.lat + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.lat - lat_delta).cos());
        let southern = self.lat < 0.0;
        let delta = if southern {
            long_delta_bottom
        } else {
            long_delta_top
        };
        [
            self.lon - delta,
            self.lat - lat_delta,
            self.lon + delta,
            self.lat + lat_delta,
        ]
    }

    /// The geohash boxes to scan, in Redis's order (centre, N, S, E, W, NE, NW, SE, SW),
    /// without those the shape cannot reach and without repeats of the box before.
    pub fn boxes(&self) -> Vec<Hash> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        } * self.to_meters;
        let mut steps = steps_for_radius(radius, self.lat);
        let at = |steps: u8| {
            encode(self.lon, self.lat, steps).unwrap_or(Hash {
                bits: 0,
                step: steps,
            })
        };
        let mut hash = at(steps);
        let area_of = |h: Hash| decode(h).unwrap_or_default();
        let too_coarse = {
            let north = area_of(neighbour(hash, 0, 1));
            let south = area_of(neighbour(hash, 0, -1));
            let east = area_of(neighbour(hash, 1, 0));
            let west = area_of(neighbour(hash, -1, 0));
            north.latitude.max < max_lat
                || south.latitude.min > min_lat
                || east.longitude.max < max_lon
                || west.longitude.min > min_lon
        };
        if steps > 1 && too_coarse {
            steps -= 1;
            hash = at(steps);
        }
        let area = area_of(hash);
        // (dx, dy) of the centre and its neighbours, in Redis's scan order.
        let mut cells: Vec<(i8, i8)> = vec![
            (0, 0),
            (0, 1),
            (0, -1),
            (1, 0),
            (-1, 0),
            (1, 1),
            (-1, 1),
            (1, -1),
            (-1, -1),
        ];
        if steps >= 2 {
            let south = area.latitude.min < min_lat;
            let north = area.latitude.max > max_lat;
            let west = area.longitude.min < min_lon;
            let east = area.longitude.max > max_lon;
            cells.retain(|&(dx, dy)| {
                (dx, dy) == (0, 0)
                    || !((south && dy < 0)
                        || (north && dy > 0)
                        || (west && dx < 0)
                        || (east && dx > 0))
            });
        }
        let mut out: Vec<Hash> = Vec::with_capacity(9);
        for (dx, dy) in cells {
            let h = if (dx, dy) == (0, 0) {
                hash
            } else {
                neighbour(hash, dx, dy)
            };
            if h.is_zero() {
                continue;
            }
            // Near a pole or with a huge radius neighbours can repeat the box just scanned.
            if out.last().is_some_and(|last| *last == h) && out.len() > 1 {
                continue;
            }
            out.push(h);
        }
        out
    }

    /// The distance in metres from the centre to a position, when it is inside the shape.
    pub fn distance_if_inside(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.to_meters).then_some(d)
            }
            Shape::Box { width, height } => {
                let (w, h) = (width * self.to_meters, height * self.to_meters);
                if lat_distance(lat, self.lat) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }
}

/// The [min, max) scores of the members inside a geohash box.
pub fn score_range(hash: Hash) -> (f64, f64) {
    let min = hash.align52();
    let max = Hash {
        bits: hash.bits + 1,
        step: hash.step,
    }
    .align52();
    (min as f64, max as f64)
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Great-circle distance in metres (haversine, Redis's earth radius).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for v in [0u32, 1, 0x3ff_ffff, 0xdead_beef, u32::MAX] {
            assert_eq!(gather(spread(v)), v);
            assert_eq!(gather(spread(v) << 1 >> 1), v);
        }
    }

    #[test]
    fn palermo_scores_as_in_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" gives score 3479099956230698 in Redis.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698.0));
        let (lon, lat) = position_of(3479099956230698.0).unwrap();
        assert!((lon - 13.361389).abs() < 1e-5 && (lat - 38.115556).abs() < 1e-5);
        assert_eq!(
            geohash_string(3479099956230698.0).as_deref(),
            Some("sqc8b49rny0")
        );
        let (clon, clat) = position_of(3479447370796909.0).unwrap();
        let d = distance(lon, lat, clon, clat);
        assert!((d - 166274.1516).abs() < 0.001, "Palermo-Catania {d}");
    }
}
