//! Metric codes: the HJ 212-2017 pollutant codes Argus knows, the Argus-defined safety and power
//! codes, and a code it does not know (kept, never dropped).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Unit of measure of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// mg/m³ (flue gas concentrations).
    MgPerM3,
    /// mg/L (wastewater concentrations).
    MgPerL,
    /// Percent by volume (O2, CH4, humidity).
    Percent,
    /// m³/s (flue gas flow).
    M3PerS,
    /// L/s (wastewater flow).
    LPerS,
    /// m/s (flue gas velocity).
    MPerS,
    /// °C.
    Celsius,
    /// kPa.
    KPa,
    /// MPa.
    MPa,
    /// No unit (pH).
    Dimensionless,
    /// ppm by volume (CO, toxic gases).
    Ppm,
    /// Percent of the lower explosive limit (combustible gas detectors).
    PercentLel,
    /// Metres (tank level).
    Metre,
    /// kW (active power).
    Kilowatt,
    /// On/off state: 1 = on (powered, running), 0 = off (cut, stopped).
    State,
}

impl Unit {
    /// The unit's symbol as shown to people and stored.
    pub const fn symbol(self) -> &'static str {
        match self {
            Unit::MgPerM3 => "mg/m3",
            Unit::MgPerL => "mg/L",
            Unit::Percent => "%",
            Unit::M3PerS => "m3/s",
            Unit::LPerS => "L/s",
            Unit::MPerS => "m/s",
            Unit::Celsius => "degC",
            Unit::KPa => "kPa",
            Unit::MPa => "MPa",
            Unit::Dimensionless => "1",
            Unit::Ppm => "ppm",
            Unit::PercentLel => "%LEL",
            Unit::Metre => "m",
            Unit::Kilowatt => "kW",
            Unit::State => "state",
        }
    }
}

/// What a metric is about; decides which department cares and which point kinds carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricDomain {
    /// Flue gas (air pollution source) quantities.
    Air,
    /// Wastewater quantities.
    Water,
    /// Coal-mine and chemical-plant safety quantities.
    Safety,
    /// Electrical metering of production lines and treatment facilities.
    Power,
}

macro_rules! metrics {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $legacy:expr, $unit:ident, $domain:ident, $name:literal; )*) => {
        /// A metric Argus knows: its code, unit, domain and name.
        ///
        /// Pollutant codes are HJ 212-2017's. Safety, process and power codes have no HJ 212 code;
        /// Argus defines them (lower case with an underscore, so they never collide with HJ 212).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $( $(#[$doc])* $variant, )*
        }

        impl Metric {
            /// Every known metric.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant),*];

            /// The code on the wire and in storage (`a21026`, `mine_ch4`).
            pub const fn code(self) -> &'static str {
                match self { $(Metric::$variant => $code,)* }
            }

            /// The HJ 212-2005 code of this metric, where it had one (`02` for SO2).
            pub const fn legacy_code(self) -> Option<&'static str> {
                match self { $(Metric::$variant => $legacy,)* }
            }

            /// Unit of measure.
            pub const fn unit(self) -> Unit {
                match self { $(Metric::$variant => Unit::$unit,)* }
            }

            /// What the metric is about.
            pub const fn domain(self) -> MetricDomain {
                match self { $(Metric::$variant => MetricDomain::$domain,)* }
            }

            /// Human-readable name.
            pub const fn name(self) -> &'static str {
                match self { $(Metric::$variant => $name,)* }
            }

            /// Look a metric up by its current code.
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some(Metric::$variant),)* _ => None }
            }
        }
    };
}

metrics! {
    /// Flue gas flow (废气).
    FlueGasFlow = "a00000", Some("B02"), M3PerS, Air, "flue gas flow";
    /// Flue gas velocity.
    FlueGasVelocity = "a01011", Some("S02"), MPerS, Air, "flue gas velocity";
    /// Flue gas temperature.
    FlueGasTemperature = "a01012", Some("S03"), Celsius, Air, "flue gas temperature";
    /// Flue gas pressure.
    FlueGasPressure = "a01013", Some("S08"), KPa, Air, "flue gas pressure";
    /// Flue gas humidity.
    FlueGasHumidity = "a01014", Some("S05"), Percent, Air, "flue gas humidity";
    /// Oxygen content of the flue gas.
    Oxygen = "a19001", Some("S01"), Percent, Air, "oxygen";
    /// Nitrogen oxides.
    Nox = "a21002", Some("03"), MgPerM3, Air, "nitrogen oxides";
    /// Carbon monoxide in flue gas.
    FlueCo = "a21005", Some("04"), MgPerM3, Air, "carbon monoxide";
    /// Hydrogen chloride.
    Hcl = "a21024", Some("08"), MgPerM3, Air, "hydrogen chloride";
    /// Sulphur dioxide.
    So2 = "a21026", Some("02"), MgPerM3, Air, "sulphur dioxide";
    /// Non-methane hydrocarbons.
    Nmhc = "a24088", None, MgPerM3, Air, "non-methane hydrocarbons";
    /// Particulate matter (smoke dust, 烟尘).
    Particulate = "a34013", Some("01"), MgPerM3, Air, "particulate matter";
    /// Wastewater flow (污水).
    WastewaterFlow = "w00000", Some("B01"), LPerS, Water, "wastewater flow";
    /// pH.
    Ph = "w01001", Some("001"), Dimensionless, Water, "pH";
    /// Suspended solids.
    SuspendedSolids = "w01012", Some("003"), MgPerL, Water, "suspended solids";
    /// Chemical oxygen demand.
    Cod = "w01018", Some("011"), MgPerL, Water, "chemical oxygen demand";
    /// Total nitrogen.
    TotalNitrogen = "w21001", Some("065"), MgPerL, Water, "total nitrogen";
    /// Ammonia nitrogen.
    AmmoniaNitrogen = "w21003", Some("060"), MgPerL, Water, "ammonia nitrogen";
    /// Total phosphorus.
    TotalPhosphorus = "w21011", Some("101"), MgPerL, Water, "total phosphorus";
    /// Methane in mine air, percent by volume.
    MineCh4 = "mine_ch4", None, Percent, Safety, "mine methane";
    /// Carbon monoxide in mine air.
    MineCo = "mine_co", None, Ppm, Safety, "mine carbon monoxide";
    /// Power state of the area a methane sensor guards (1 powered, 0 cut): the power-cut feedback.
    MinePower = "mine_power", None, State, Safety, "mine area power state";
    /// Combustible gas at a detector, percent of the lower explosive limit.
    GasCombustible = "gas_lel", None, PercentLel, Safety, "combustible gas";
    /// Toxic gas at a detector (H2S, NH3, Cl2 ...), ppm.
    GasToxic = "gas_toxic", None, Ppm, Safety, "toxic gas";
    /// Storage tank liquid level.
    TankLevel = "tank_level", None, Metre, Safety, "tank level";
    /// Process or tank pressure.
    ProcessPressure = "proc_pressure", None, MPa, Safety, "process pressure";
    /// Process or tank temperature.
    ProcessTemperature = "proc_temp", None, Celsius, Safety, "process temperature";
    /// Active power drawn by a metered circuit (production line or treatment facility).
    ActivePower = "power_kw", None, Kilowatt, Power, "active power";
}

impl Metric {
    /// Look a metric up by its HJ 212-2005 code (`02` -> SO2).
    pub fn from_legacy_code(code: &str) -> Option<Self> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.legacy_code() == Some(code))
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The metric of a reading: a known [`Metric`], or a code Argus does not know, kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricCode {
    /// A metric in the catalogue.
    Known(Metric),
    /// A code not in the catalogue (a vendor's own factor code, say). Readings with it are kept.
    Unknown(Arc<str>),
}

impl MetricCode {
    /// Classify a code: known if it is in the catalogue, unknown (kept as is) otherwise.
    ///
    /// ```
    /// use argus_model::{Metric, MetricCode};
    ///
    /// assert_eq!(MetricCode::parse("a21026"), MetricCode::Known(Metric::So2));
    /// assert_eq!(MetricCode::parse("x99901").as_str(), "x99901");
    /// ```
    pub fn parse(code: &str) -> Self {
        match Metric::from_code(code) {
            Some(metric) => MetricCode::Known(metric),
            None => MetricCode::Unknown(Arc::from(code)),
        }
    }

    /// The code as sent.
    pub fn as_str(&self) -> &str {
        match self {
            MetricCode::Known(metric) => metric.code(),
            MetricCode::Unknown(code) => code,
        }
    }

    /// The known metric, if any.
    pub fn known(&self) -> Option<Metric> {
        match self {
            MetricCode::Known(metric) => Some(*metric),
            MetricCode::Unknown(_) => None,
        }
    }
}

impl From<Metric> for MetricCode {
    fn from(metric: Metric) -> Self {
        MetricCode::Known(metric)
    }
}

impl fmt::Display for MetricCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MetricCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MetricCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(MetricCode::parse(&code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        for (i, a) in Metric::ALL.iter().enumerate() {
            assert_eq!(Metric::from_code(a.code()), Some(*a));
            for b in &Metric::ALL[i + 1..] {
                assert_ne!(a.code(), b.code());
                if a.legacy_code().is_some() {
                    assert_ne!(a.legacy_code(), b.legacy_code(), "{a:?} and {b:?}");
                }
            }
        }
    }

    #[test]
    fn legacy_2005_codes_map_to_2017_codes() {
        let pairs = [
            ("B02", "a00000"),
            ("01", "a34013"),
            ("02", "a21026"),
            ("03", "a21002"),
        ];
        let more = [
            ("S01", "a19001"),
            ("B01", "w00000"),
            ("011", "w01018"),
            ("060", "w21003"),
        ];
        for (legacy, current) in pairs.into_iter().chain(more) {
            assert_eq!(
                Metric::from_legacy_code(legacy).map(Metric::code),
                Some(current)
            );
        }
    }

    #[test]
    fn unknown_codes_are_kept_as_sent() {
        let code = MetricCode::parse("x99901");
        assert_eq!(code.as_str(), "x99901");
        assert_eq!(code.known(), None);
        assert_eq!(MetricCode::parse("a21026"), MetricCode::Known(Metric::So2));
        assert_eq!(Metric::So2.unit().symbol(), "mg/m3");
    }
}
