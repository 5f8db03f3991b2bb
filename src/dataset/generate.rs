//! Generates a realistic canonical dataset (docs/batch-replay.md, the generated dataset),
//! deterministic for a seed, so that a new user without the real `events.parquet` still
//! gets a live feed on the first command.
//!
//! Demand: per kitchen a daily volume (base × growth^day × weekday factor) spread over the
//! day by a curve with lunch and dinner peaks, drawn as Poisson arrivals per minute. Each
//! order then walks the kitchen stages with normal stage times, a driver drives a
//! street-like route at 25 mph and pings once per minute of driving.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, Int8Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::EventType;
use super::{EVENTS_FILE, LOCATIONS_FILE};
use rand::{RngExt, SeedableRng};
use rand_distr::{Poisson, StandardNormal};
use rand_xoshiro::Xoshiro256StarStar;

use crate::time::{self, DAY};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Days of orders (the canonical dataset has 90).
    pub days: u32,
    /// The random seed: the same seed gives the same files, byte for byte.
    pub seed: u64,
    /// Unix seconds of day 0's midnight (UTC).
    pub start: i64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            days: 90,
            seed: 42,
            start: 1_704_067_200, // 2024-01-01 00:00:00 UTC, as the canonical dataset.
        }
    }
}

/// What was generated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerateSummary {
    pub orders: u64,
    pub events: u64,
    /// Orders created per kitchen (index: location_id - 1) per day.
    pub orders_per_day: Vec<[u32; 4]>,
}

/// A kitchen and how its demand behaves.
struct City {
    location_id: u8,
    code: &'static str,
    name: &'static str,
    narrative: &'static str,
    lat: f64,
    lon: f64,
    base_per_day: f64,
    growth_daily: f64,
    weekly_pattern: bool,
    late_night_peak: bool,
    /// Customers are mirrored back to land when they fall in water: (lat, lon) limits.
    max_lat: f64,
    max_lon: f64,
    min_lon: f64,
}

const CITIES: [City; 4] = [
    City {
        location_id: 1,
        code: "sf",
        name: "San Francisco",
        narrative: "growing",
        lat: 37.791024,
        lon: -122.392865,
        base_per_day: 150.0,
        growth_daily: 0.0065,
        weekly_pattern: true,
        late_night_peak: false,
        max_lat: 37.808,
        max_lon: -122.387,
        min_lon: -122.51,
    },
    City {
        location_id: 2,
        code: "sv",
        name: "Silicon Valley",
        narrative: "growing_fast",
        lat: 37.402937,
        lon: -122.110740,
        base_per_day: 50.0,
        growth_daily: 0.0135,
        weekly_pattern: false,
        late_night_peak: true,
        max_lat: 90.0,
        max_lon: 180.0,
        min_lon: -180.0,
    },
    City {
        location_id: 3,
        code: "bellevue",
        name: "Bellevue",
        narrative: "stagnant",
        lat: 47.614422,
        lon: -122.338964,
        base_per_day: 200.0,
        growth_daily: 0.0,
        weekly_pattern: true,
        late_night_peak: false,
        max_lat: 90.0,
        max_lon: 180.0,
        min_lon: -122.352,
    },
    City {
        location_id: 4,
        code: "chicago",
        name: "Chicago",
        narrative: "declining",
        lat: 41.890664,
        lon: -87.632079,
        base_per_day: 300.0,
        growth_daily: -0.004,
        weekly_pattern: true,
        late_night_peak: false,
        max_lat: 90.0,
        max_lon: -87.614,
        min_lon: -180.0,
    },
];

/// Monday first, as [`time::weekday`].
const WEEKDAY_FACTOR: [f64; 7] = [1.0, 1.05, 1.08, 1.10, 1.25, 1.35, 1.15];

/// Relative demand in the minute `m` of the day (0..1440).
fn demand_curve(minute: u32, late_night_peak: bool) -> f64 {
    let lunch = (11 * 60..13 * 60 + 30).contains(&minute);
    let dinner = (17 * 60..20 * 60).contains(&minute);
    let late = late_night_peak && !(60..21 * 60).contains(&minute);
    if dinner {
        3.5
    } else if lunch || late {
        3.0
    } else {
        1.0
    }
}

/// Kitchen stage times in minutes (mean, sd), floored at 0.1.
const CREATED_TO_STARTED: (f64, f64) = (2.0, 1.0);
const STARTED_TO_FINISHED: (f64, f64) = (10.0, 3.0);
const FINISHED_TO_READY: (f64, f64) = (2.0, 1.0);
const READY_TO_PICKUP: (f64, f64) = (6.0, 2.0);

const DRIVE_MPH: f64 = 25.0;
/// Customers are uniform over a disc of this radius (miles) around the kitchen.
const DELIVERY_RADIUS_MILES: f64 = 4.0;
/// Street spacing of the route grid, in miles.
const BLOCK_MILES: f64 = 0.1;
const MILES_PER_DEGREE_LAT: f64 = 69.0;

const STREETS: [&str; 12] = [
    "Main St",
    "Oak Ave",
    "Pine St",
    "Maple Ave",
    "Cedar St",
    "Elm St",
    "Park Ave",
    "Lake St",
    "Hill St",
    "Market St",
    "Mission St",
    "Grand Ave",
];

/// A brand's menu: (brand name, [(item name, price)]). Brand k has id k + 1.
const MENUS: [(&str, [(&str, f64); 5]); 8] = [
    (
        "Bao Down",
        [
            ("Pork Belly Bao", 8.5),
            ("Mushroom Bao", 7.5),
            ("Scallion Fries", 4.25),
            ("Cucumber Salad", 3.95),
            ("Yuzu Soda", 2.95),
        ],
    ),
    (
        "Burrito Bay",
        [
            ("Carne Asada Burrito", 11.95),
            ("Veggie Burrito", 9.95),
            ("Chips & Salsa", 3.5),
            ("Elote Cup", 4.75),
            ("Horchata", 3.25),
        ],
    ),
    (
        "Patty Shack",
        [
            ("Double Cheeseburger", 10.49),
            ("Chicken Sandwich", 9.49),
            ("Crinkle Fries", 3.99),
            ("Onion Rings", 4.29),
            ("Vanilla Shake", 5.25),
        ],
    ),
    (
        "Slice Theory",
        [
            ("Margherita Pie", 14.0),
            ("Pepperoni Slice", 4.5),
            ("Garlic Knots", 5.0),
            ("Caesar Salad", 7.5),
            ("Sparkling Water", 2.25),
        ],
    ),
    (
        "Pho Real",
        [
            ("Beef Pho", 13.5),
            ("Chicken Pho", 12.5),
            ("Spring Rolls", 6.0),
            ("Banh Mi", 9.0),
            ("Thai Iced Tea", 4.0),
        ],
    ),
    (
        "Green Bowl",
        [
            ("Harvest Bowl", 12.25),
            ("Kale Caesar", 11.0),
            ("Quinoa Cup", 5.5),
            ("Roasted Sweet Potato", 4.5),
            ("Cold Brew", 4.25),
        ],
    ),
    (
        "Curry Up",
        [
            ("Butter Chicken", 14.5),
            ("Chana Masala", 12.0),
            ("Garlic Naan", 3.5),
            ("Samosa Pair", 5.0),
            ("Mango Lassi", 4.5),
        ],
    ),
    (
        "Sweet Tooth",
        [
            ("Brownie", 3.75),
            ("Cookie Box", 6.5),
            ("Cheesecake Slice", 5.95),
            ("Mochi Trio", 5.25),
            ("Hot Chocolate", 3.5),
        ],
    ),
];

/// Brands each kitchen sells (indices into MENUS).
const BRANDS_AT: [&[usize]; 4] = [
    &[0, 1, 3, 4, 5, 7],
    &[0, 2, 4, 5, 6],
    &[1, 2, 3, 5, 6, 7],
    &[1, 2, 3, 6, 7],
];

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("days must be between 1 and 3650, not {0}")]
    Days(u32),
}

/// Generates `events.parquet` and `locations.parquet` into `out_dir`, calling `progress`
/// after each day with (days done, days in all). Files are written under temporary names
/// and renamed, so a crash never leaves a half-written dataset behind.
pub fn generate(
    opts: &GenerateOptions,
    out_dir: &Path,
    mut progress: impl FnMut(u32, u32),
) -> Result<GenerateSummary, GenerateError> {
    if opts.days == 0 || opts.days > 3650 {
        return Err(GenerateError::Days(opts.days));
    }
    let io = |path: &Path, e: &dyn std::fmt::Display| GenerateError::Io {
        path: path.into(),
        message: e.to_string(),
    };
    fs::create_dir_all(out_dir).map_err(|e| io(out_dir, &e))?;

    let events_path = out_dir.join(EVENTS_FILE);
    let tmp_path = out_dir.join(format!(".{EVENTS_FILE}.tmp"));
    let file = File::create(&tmp_path).map_err(|e| io(&tmp_path, &e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let schema = events_schema();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))
        .map_err(|e| io(&tmp_path, &e))?;

    let mut generator = Generator::new(opts.seed);
    let mut summary = GenerateSummary::default();
    for day in 0..opts.days {
        let mut rows = Rows::default();
        let counts = generator.day(opts.start + i64::from(day) * DAY, day, &mut rows);
        summary.orders += u64::from(counts.iter().sum::<u32>());
        summary.events += rows.len as u64;
        summary.orders_per_day.push(counts);
        let batch = rows.into_batch(&schema).map_err(|e| io(&tmp_path, &e))?;
        writer.write(&batch).map_err(|e| io(&tmp_path, &e))?;
        progress(day + 1, opts.days);
    }
    let file = writer.into_inner().map_err(|e| io(&tmp_path, &e))?;
    file.sync_all().map_err(|e| io(&tmp_path, &e))?;
    drop(file);
    fs::rename(&tmp_path, &events_path).map_err(|e| io(&events_path, &e))?;

    let locations_path = out_dir.join(LOCATIONS_FILE);
    write_locations(&locations_path).map_err(|e| io(&locations_path, &e))?;
    Ok(summary)
}

/// The column types pandas gives the real file (docs/batch-replay.md, the dataset).
fn events_schema() -> Arc<Schema> {
    let f = |name: &str, dt: DataType| Field::new(name, dt, true);
    Arc::new(Schema::new(vec![
        f("order_id", DataType::Utf8),
        f("location_id", DataType::Int8),
        f("event_type_id", DataType::Int8),
        f("ts_seconds", DataType::Int64),
        f("sequence", DataType::Int8),
        f("customer_lat", DataType::Float32),
        f("customer_lon", DataType::Float32),
        f("customer_addr", DataType::Utf8),
        f("items_json", DataType::Utf8),
        f("route_json", DataType::Utf8),
        f("ping_lat", DataType::Float32),
        f("ping_lon", DataType::Float32),
        f("ping_progress", DataType::Float32),
    ]))
}

fn write_locations(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let strings = |f: fn(&City) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(CITIES.iter().map(f)))
    };
    let floats = |f: fn(&City) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(CITIES.iter().map(f)))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "location_id",
            Arc::new(Int64Array::from_iter_values(
                CITIES.iter().map(|c| i64::from(c.location_id)),
            )),
        ),
        ("location_code", strings(|c| c.code)),
        ("name", strings(|c| c.name)),
        ("lat", floats(|c| c.lat)),
        ("lon", floats(|c| c.lon)),
        ("narrative", strings(|c| c.narrative)),
        (
            "base_orders_day",
            Arc::new(Int64Array::from_iter_values(
                CITIES.iter().map(|c| c.base_per_day as i64),
            )),
        ),
        ("growth_rate_daily", floats(|c| c.growth_daily)),
    ];
    let batch = RecordBatch::try_from_iter(columns)?;
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp)?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.into_inner()?.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Column builders for one day of events.
#[derive(Default)]
struct Rows {
    len: usize,
    order_id: StringBuilder,
    location_id: Int8Builder,
    event_type_id: Int8Builder,
    ts_seconds: Int64Builder,
    sequence: Int8Builder,
    customer_lat: Float32Builder,
    customer_lon: Float32Builder,
    customer_addr: StringBuilder,
    items_json: StringBuilder,
    route_json: StringBuilder,
    ping_lat: Float32Builder,
    ping_lon: Float32Builder,
    ping_progress: Float32Builder,
}

/// The optional columns of one row.
#[derive(Default)]
struct Extra<'a> {
    customer: Option<(f32, f32)>,
    addr: Option<&'a str>,
    items: Option<&'a str>,
    route: Option<&'a str>,
    ping: Option<(f32, f32, f32)>,
}

impl Rows {
    fn push(&mut self, order: &Order, event_type: EventType, ts: i64, extra: Extra<'_>) {
        let sequence = i8::try_from(self.len - order.first_row).unwrap_or(i8::MAX);
        self.len += 1;
        self.order_id.append_value(order.id_str());
        self.location_id.append_value(order.location_id as i8);
        self.event_type_id.append_value(event_type.id() as i8);
        self.ts_seconds.append_value(ts);
        self.sequence.append_value(sequence);
        self.customer_lat.append_option(extra.customer.map(|c| c.0));
        self.customer_lon.append_option(extra.customer.map(|c| c.1));
        self.customer_addr.append_option(extra.addr);
        self.items_json.append_option(extra.items);
        self.route_json.append_option(extra.route);
        self.ping_lat.append_option(extra.ping.map(|p| p.0));
        self.ping_lon.append_option(extra.ping.map(|p| p.1));
        self.ping_progress.append_option(extra.ping.map(|p| p.2));
    }

    fn into_batch(mut self, schema: &Arc<Schema>) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.order_id.finish()),
            Arc::new(self.location_id.finish()),
            Arc::new(self.event_type_id.finish()),
            Arc::new(self.ts_seconds.finish()),
            Arc::new(self.sequence.finish()),
            Arc::new(self.customer_lat.finish()),
            Arc::new(self.customer_lon.finish()),
            Arc::new(self.customer_addr.finish()),
            Arc::new(self.items_json.finish()),
            Arc::new(self.route_json.finish()),
            Arc::new(self.ping_lat.finish()),
            Arc::new(self.ping_lon.finish()),
            Arc::new(self.ping_progress.finish()),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns)
    }
}

struct Order {
    id: [u8; 6],
    location_id: u8,
    first_row: usize,
}

impl Order {
    fn id_str(&self) -> &str {
        std::str::from_utf8(&self.id).expect("ASCII id")
    }
}

/// The generator's random numbers: xoshiro256** (rand_xoshiro) seeded from the seed, with
/// rand_distr's normal and Poisson draws. The crate versions are pinned in Cargo.lock and a
/// test pins a digest of a small dataset, so a seed keeps meaning the same dataset.
struct Rng(Xoshiro256StarStar);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(Xoshiro256StarStar::seed_from_u64(seed))
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n)
    }

    /// Standard normal.
    fn normal(&mut self) -> f64 {
        self.0.sample(StandardNormal)
    }

    /// Poisson(lambda); 0 when lambda is 0.
    fn poisson(&mut self, lambda: f64) -> u32 {
        match Poisson::new(lambda) {
            Ok(p) => self.0.sample(p) as u32,
            Err(_) => 0,
        }
    }

    /// A stage time in seconds: normal minutes, floored at 0.1 minute.
    fn stage_seconds(&mut self, (mean, sd): (f64, f64)) -> f64 {
        (mean + sd * self.normal()).max(0.1) * 60.0
    }
}

struct Generator {
    rng: Rng,
    used_ids: HashSet<[u8; 6]>,
    /// Normalised minute weights per city: sums to 1 over the day.
    curves: Vec<Vec<f64>>,
    text: String,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        let curves = CITIES
            .iter()
            .map(|c| {
                let w: Vec<f64> = (0..1440)
                    .map(|m| demand_curve(m, c.late_night_peak))
                    .collect();
                let total: f64 = w.iter().sum();
                w.into_iter().map(|x| x / total).collect()
            })
            .collect();
        Generator {
            rng: Rng::new(seed),
            used_ids: HashSet::new(),
            curves,
            text: String::new(),
        }
    }

    /// Generates every order created on `day` (starting at `midnight`) into `rows`.
    fn day(&mut self, midnight: i64, day: u32, rows: &mut Rows) -> [u32; 4] {
        let weekday = WEEKDAY_FACTOR[time::weekday(midnight) as usize];
        let volume: Vec<f64> = CITIES
            .iter()
            .map(|c| {
                let week = if c.weekly_pattern { weekday } else { 1.0 };
                c.base_per_day * (1.0 + c.growth_daily).powi(day as i32) * week
            })
            .collect();
        let mut counts = [0u32; 4];
        for minute in 0..1440u32 {
            for (ci, city) in CITIES.iter().enumerate() {
                let lambda = volume[ci] * self.curves[ci][minute as usize];
                for _ in 0..self.rng.poisson(lambda) {
                    let created = midnight + i64::from(minute) * 60 + self.rng.below(60) as i64;
                    self.order(city, ci, created, rows);
                    counts[ci] += 1;
                }
            }
        }
        counts
    }

    fn new_order_id(&mut self) -> [u8; 6] {
        const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        loop {
            let mut id = [0u8; 6];
            for c in &mut id {
                *c = ALPHABET[self.rng.below(36) as usize];
            }
            if self.used_ids.insert(id) {
                return id;
            }
        }
    }

    /// One order's events, in sequence order.
    fn order(&mut self, city: &City, ci: usize, created: i64, rows: &mut Rows) {
        let order = Order {
            id: self.new_order_id(),
            location_id: city.location_id,
            first_row: rows.len,
        };
        let customer = self.customer_position(city);
        let customer32 = (customer.0 as f32, customer.1 as f32);
        let addr = format!(
            "{} {}",
            100 + self.rng.below(9900),
            STREETS[self.rng.below(STREETS.len() as u64) as usize]
        );
        self.items_json(ci);
        let items = std::mem::take(&mut self.text);
        rows.push(
            &order,
            EventType::OrderCreated,
            created,
            Extra {
                customer: Some(customer32),
                addr: Some(&addr),
                items: Some(&items),
                ..Extra::default()
            },
        );
        self.text = items;

        let t0 = created as f64;
        let started = t0 + self.rng.stage_seconds(CREATED_TO_STARTED);
        let finished = started + self.rng.stage_seconds(STARTED_TO_FINISHED);
        let ready = finished + self.rng.stage_seconds(FINISHED_TO_READY);
        let picked = ready + self.rng.stage_seconds(READY_TO_PICKUP);
        let arrived = t0 + (picked - t0) * self.rng.uniform();
        for (event_type, t) in [
            (EventType::GkStarted, started),
            (EventType::GkFinished, finished),
            (EventType::GkReady, ready),
            (EventType::DriverArrived, arrived),
        ] {
            rows.push(&order, event_type, t as i64, Extra::default());
        }

        let route = self.route((city.lat, city.lon), customer);
        let length = route.length_miles;
        let drive_seconds = length / DRIVE_MPH * 3600.0;
        let picked_at = picked as i64;
        route.write_json(&mut self.text);
        rows.push(
            &order,
            EventType::DriverPickedUp,
            picked_at,
            Extra {
                route: Some(&self.text),
                ..Extra::default()
            },
        );
        let mut k = 1;
        while (60 * k) as f64 + 0.5 < drive_seconds {
            let fraction = (60 * k) as f64 / drive_seconds;
            let (lat, lon) = route.at_fraction(fraction);
            rows.push(
                &order,
                EventType::DriverPing,
                picked_at + 60 * k,
                Extra {
                    ping: Some((lat as f32, lon as f32, (fraction * 100.0) as f32)),
                    ..Extra::default()
                },
            );
            k += 1;
        }
        rows.push(
            &order,
            EventType::Delivered,
            picked_at + drive_seconds.round() as i64,
            Extra {
                customer: Some(customer32),
                ..Extra::default()
            },
        );
    }

    /// A customer uniform over a disc around the kitchen, mirrored out of the water.
    fn customer_position(&mut self, city: &City) -> (f64, f64) {
        let r = DELIVERY_RADIUS_MILES * self.rng.uniform().sqrt().max(0.03);
        let angle = std::f64::consts::TAU * self.rng.uniform();
        let lon_miles = MILES_PER_DEGREE_LAT * city.lat.to_radians().cos();
        let mut lat = city.lat + r * angle.sin() / MILES_PER_DEGREE_LAT;
        let mut lon = city.lon + r * angle.cos() / lon_miles;
        if lat > city.max_lat {
            lat = 2.0 * city.max_lat - lat;
        }
        if lon > city.max_lon {
            lon = 2.0 * city.max_lon - lon;
        }
        if lon < city.min_lon {
            lon = 2.0 * city.min_lon - lon;
        }
        (lat, lon)
    }

    /// 1 to 4 items of one brand sold at the kitchen, as a JSON list in `self.text`.
    fn items_json(&mut self, ci: usize) {
        use std::fmt::Write;
        let brands = BRANDS_AT[ci];
        let brand = brands[self.rng.below(brands.len() as u64) as usize];
        let (_, items) = MENUS[brand];
        let count = 1 + self.rng.below(4) as usize;
        let first = self.rng.below(items.len() as u64) as usize;
        self.text.clear();
        self.text.push('[');
        for n in 0..count {
            let item = (first + n * 2) % items.len();
            let (name, price) = items[item];
            let id = brand * items.len() + item + 1;
            // Two categories per menu: mains (items 0-1) and sides (2-4).
            let category = brand * 2 + usize::from(item >= 2) + 1;
            let qty = 1 + self.rng.below(3) * u64::from(self.rng.below(3) == 0);
            if n > 0 {
                self.text.push_str(", ");
            }
            let _ = write!(
                self.text,
                "{{\"id\": {id}, \"category_id\": {category}, \"menu_id\": {m}, \
                 \"brand_id\": {m}, \"name\": \"{name}\", \"price\": {price}, \"qty\": {qty}}}",
                m = brand + 1,
            );
        }
        self.text.push(']');
    }

    /// A street-like route: a staircase along a street grid from the kitchen, then to the
    /// customer's door, resampled to 30-80 points with every corner kept.
    fn route(&mut self, from: (f64, f64), to: (f64, f64)) -> Route {
        let lon_miles = MILES_PER_DEGREE_LAT * from.0.to_radians().cos();
        let dy = (to.0 - from.0) * MILES_PER_DEGREE_LAT;
        let dx = (to.1 - from.1) * lon_miles;
        let turns = 1 + self.rng.below(3) as usize;
        let split = |rng: &mut Rng, total: f64| -> Vec<f64> {
            // Cut points along the axis, snapped to whole blocks.
            let mut cuts: Vec<f64> = (0..turns)
                .map(|_| ((total * rng.uniform()) / BLOCK_MILES).round() * BLOCK_MILES)
                .collect();
            cuts.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
            cuts.push(total);
            cuts
        };
        let ys = split(&mut self.rng, dy);
        let xs = split(&mut self.rng, dx);
        let lat_first = self.rng.below(2) == 0;
        let mut corners = vec![(0.0, 0.0)];
        let (mut y, mut x) = (0.0, 0.0);
        for (&ny, &nx) in ys.iter().zip(&xs) {
            if lat_first {
                y = ny;
                corners.push((y, x));
                x = nx;
            } else {
                x = nx;
                corners.push((y, x));
                y = ny;
            }
            corners.push((y, x));
        }
        corners.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9);

        let length: f64 = corners
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).abs() + (w[1].1 - w[0].1).abs())
            .sum();
        let wanted = (30.0 + length * 11.0 + self.rng.normal() * 4.0).clamp(30.0, 80.0) as usize;
        let points = resample(&corners, wanted.max(corners.len()).min(80));
        Route {
            points: points
                .into_iter()
                .map(|(y, x)| (from.0 + y / MILES_PER_DEGREE_LAT, from.1 + x / lon_miles))
                .collect(),
            length_miles: length,
        }
    }
}

/// `n` points along the polyline `corners` (in miles), every corner among them.
fn resample(corners: &[(f64, f64)], n: usize) -> Vec<(f64, f64)> {
    let legs = corners.len() - 1;
    if legs == 0 {
        return vec![corners[0]; n.max(2)];
    }
    let leg_miles: Vec<f64> = corners
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).abs() + (w[1].1 - w[0].1).abs())
        .collect();
    let total = leg_miles.iter().sum::<f64>().max(1e-9);
    let extra = n - corners.len();
    // Interior points per leg, proportional to its length (largest remainder).
    let shares: Vec<f64> = leg_miles.iter().map(|l| l / total * extra as f64).collect();
    let mut per_leg: Vec<usize> = shares.iter().map(|s| s.floor() as usize).collect();
    let mut left = extra - per_leg.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..legs).collect();
    order.sort_by(|&a, &b| {
        (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor()))
    });
    for &i in order.iter().cycle().take(legs * 2) {
        if left == 0 {
            break;
        }
        per_leg[i] += 1;
        left -= 1;
    }
    let mut out = vec![corners[0]];
    for (i, w) in corners.windows(2).enumerate() {
        let k = per_leg[i];
        for j in 1..=k {
            let f = j as f64 / (k + 1) as f64;
            out.push((
                w[0].0 + (w[1].0 - w[0].0) * f,
                w[0].1 + (w[1].1 - w[0].1) * f,
            ));
        }
        out.push(w[1]);
    }
    out
}

/// A driver's route: its points in degrees and its street length.
struct Route {
    points: Vec<(f64, f64)>,
    length_miles: f64,
}

impl Route {
    /// The point at `fraction` (0..1) of the route's length, walking its points.
    fn at_fraction(&self, fraction: f64) -> (f64, f64) {
        let seg_len = |a: (f64, f64), b: (f64, f64)| {
            let lat_scale = a.0.to_radians().cos();
            (b.0 - a.0).abs() + (b.1 - a.1).abs() * lat_scale
        };
        let total: f64 = self.points.windows(2).map(|w| seg_len(w[0], w[1])).sum();
        let mut want = fraction.clamp(0.0, 1.0) * total;
        for w in self.points.windows(2) {
            let l = seg_len(w[0], w[1]);
            if want <= l && l > 0.0 {
                let f = want / l;
                return (
                    w[0].0 + (w[1].0 - w[0].0) * f,
                    w[0].1 + (w[1].1 - w[0].1) * f,
                );
            }
            want -= l;
        }
        *self.points.last().expect("route has points")
    }

    /// `[[lat, lon], ...]` with 7 decimals (about 1 cm), as the canonical file writes it.
    fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        out.push('[');
        for (i, (lat, lon)) in self.points.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "[{}, {}]", round7(*lat), round7(*lon));
        }
        out.push(']');
    }
}

fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_deterministic_and_distributed_as_asked() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<f64> = (0..5).map(|_| a.uniform()).collect();
        let ys: Vec<f64> = (0..5).map(|_| b.uniform()).collect();
        assert_eq!(xs, ys);
        assert!((0..10_000).all(|_| a.below(36) < 36));
        let normals: Vec<f64> = (0..100_000).map(|_| a.normal()).collect();
        let mean = normals.iter().sum::<f64>() / 1e5;
        let sd = (normals.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 1e5).sqrt();
        assert!(mean.abs() < 0.02 && (sd - 1.0).abs() < 0.02, "{mean} {sd}");
        assert_eq!(a.poisson(0.0), 0);
        let mean = (0..100_000).map(|_| a.uniform()).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let p = (0..100_000).map(|_| f64::from(a.poisson(2.5))).sum::<f64>() / 100_000.0;
        assert!((p - 2.5).abs() < 0.05, "{p}");
    }

    #[test]
    fn demand_curve_peaks() {
        assert_eq!(demand_curve(12 * 60, false), 3.0);
        assert_eq!(demand_curve(18 * 60, false), 3.5);
        assert_eq!(demand_curve(23 * 60, false), 1.0);
        assert_eq!(demand_curve(23 * 60, true), 3.0);
        assert_eq!(demand_curve(30, true), 3.0);
    }

    #[test]
    fn routes_start_at_kitchen_end_at_customer_with_30_to_80_points() {
        let mut g = Generator::new(1);
        let city = &CITIES[0];
        for _ in 0..200 {
            let customer = g.customer_position(city);
            let r = g.route((city.lat, city.lon), customer);
            assert!((30..=80).contains(&r.points.len()), "{}", r.points.len());
            let (first, last) = (r.points[0], *r.points.last().unwrap());
            assert!((first.0 - city.lat).abs() < 1e-9 && (first.1 - city.lon).abs() < 1e-9);
            assert!((last.0 - customer.0).abs() < 1e-9 && (last.1 - customer.1).abs() < 1e-9);
            // Street-like: every step moves along one axis only.
            for w in r.points.windows(2) {
                let moved_lat = (w[1].0 - w[0].0).abs() > 1e-12;
                let moved_lon = (w[1].1 - w[0].1).abs() > 1e-12;
                assert!(!(moved_lat && moved_lon), "diagonal step {w:?}");
            }
            assert!(customer.1 <= city.max_lon && customer.0 <= city.max_lat);
        }
    }
}
