//! A generated clinic database like the reference system's (a dental
//! faculty hospital): users, patients, appointments, treatments,
//! medical_documents, audit_log (JSON), a table without a primary key, a
//! view, a trigger, a stored procedure and an event. Deterministic for a
//! seed; written as SQL (multi-row INSERTs) for the stock client:
//! `lifeboat-gen clinic 100 7 | mariadb clinic`.

use std::io::{self, Write};

use crate::data::Rng;

const FIRST: [&str; 12] = [
    "Ayu", "Budi", "Citra", "Dewi", "Eko", "Fitri", "Gita", "Hadi", "Intan", "Joko", "Kartika",
    "Lestari",
];
const LAST: [&str; 10] = [
    "Santoso", "Wijaya", "Saputra", "Hidayat", "Kusuma", "Pratama", "Nugroho", "O'Brien", "Lim",
    "Tan",
];
const CODES: [&str; 8] = [
    "D0120", "D1110", "D2391", "D2740", "D3310", "D7140", "D4341", "D9110",
];

/// The schema, the objects and the rows, for about `scale_mb` MB of data.
pub fn write_clinic_sql(w: &mut dyn Write, scale_mb: u64, seed: u64) -> io::Result<()> {
    let unit = (scale_mb / 2).max(1);
    let users = 20 + unit.min(500);
    let patients = 1000 * unit;
    let appointments = 5000 * unit;
    let treatments = 4000 * unit;
    let documents = 1500 * unit;
    let audit = 3000 * unit;
    let reminders = 1000 * unit;
    let mut rng = Rng::new(seed);
    w.write_all(SCHEMA.as_bytes())?;

    batch(
        w,
        "users (id, email, name, role, password_hash, created_at)",
        users,
        |i, out| {
            let name = format!(
                "{} {}",
                FIRST[(i % 12) as usize],
                LAST[(i / 12 % 10) as usize]
            );
            let role = ["admin", "dentist", "staff"][(i % 3) as usize];
            let mut hash = [0u8; 32];
            rng.fill(&mut hash);
            write!(
            out,
            "({i},'user{i}@clinic.example','{}','{role}',X'{}','2024-01-{:02} 08:{:02}:{:02}.{:03}')",
            esc(&name),
            hex::encode(hash),
            1 + i % 28,
            i % 60,
            (i * 7) % 60,
            i % 1000
        )
        },
    )?;
    batch(
        w,
        "patients (id, medical_record_no, name, birth_date, phone, photo, notes, created_by)",
        patients,
        |i, out| {
            let emoji = if i % 53 == 0 { " 😀🦷" } else { "" };
            let name = format!(
                "{} {}{emoji}",
                FIRST[rng.below(12) as usize],
                LAST[rng.below(10) as usize]
            );
            let phone = if i % 7 == 0 {
                "NULL".to_string()
            } else {
                format!("'+62-8{:09}'", rng.below(1_000_000_000))
            };
            let photo = if i % 11 == 0 {
                let mut b = vec![0u8; 64 + rng.below(512) as usize];
                rng.fill(&mut b);
                format!("X'{}'", hex::encode(b))
            } else {
                "NULL".into()
            };
            let notes = match i % 5 {
                0 => "NULL".to_string(),
                1 => "'allergic to penicillin\\nsee \"history\" \\\\ records'".to_string(),
                _ => format!(
                    "'{} visits; last cleaning {} months ago'",
                    rng.below(40),
                    rng.below(24)
                ),
            };
            write!(
                out,
                "({i},'MR-{i:08}','{}','{}-{:02}-{:02}',{phone},{photo},{notes},{})",
                esc(&name),
                1940 + rng.below(80),
                1 + rng.below(12),
                1 + rng.below(28),
                1 + i % users
            )
        },
    )?;
    batch(
        w,
        "appointments (id, patient_id, dentist_id, starts_at, status, notes, updated_at)",
        appointments,
        |i, out| {
            let status = ["scheduled", "done", "cancelled", "no_show"][rng.below(4) as usize];
            write!(
                out,
                "({i},{},{},'2025-{:02}-{:02} {:02}:{:02}:00','{status}',{},'2025-06-01 12:00:00.{:06}')",
                1 + rng.below(patients),
                1 + rng.below(users),
                1 + rng.below(12),
                1 + rng.below(28),
                8 + rng.below(9),
                rng.below(4) * 15,
                if i % 3 == 0 { "NULL".to_string() } else { format!("'checkup #{}'", rng.below(1000)) },
                rng.below(1_000_000)
            )
        },
    )?;
    batch(
        w,
        "treatments (id, appointment_id, code, description, cost, tooth)",
        treatments,
        |i, out| {
            write!(
                out,
                "({i},{},'{}','treatment of tooth, step {}',{}.{:02},{})",
                1 + rng.below(appointments),
                CODES[rng.below(8) as usize],
                rng.below(5),
                rng.below(5_000_000),
                rng.below(100),
                if i % 4 == 0 {
                    "NULL".to_string()
                } else {
                    (11 + rng.below(38)).to_string()
                }
            )
        },
    )?;
    batch(
        w,
        "medical_documents (id, patient_id, storage_provider, storage_bucket, storage_key, sha256, size_bytes, content_type, uploaded_at)",
        documents,
        |i, out| {
            let local = i % 40 == 0;
            let mut h = [0u8; 32];
            rng.fill(&mut h);
            write!(
                out,
                "({i},{},'{}',{},'patients/{}/scan {i}.pdf','{}',{},'application/pdf','2025-0{}-1{} 10:00:00')",
                1 + rng.below(patients),
                if local { "local" } else { "r2" },
                if local { "NULL" } else { "'clinic-uploads'" },
                1 + rng.below(patients),
                hex::encode(h),
                1000 + rng.below(20_000_000),
                1 + rng.below(9),
                rng.below(10)
            )
        },
    )?;
    batch(
        w,
        "audit_log (id, user_id, action, entity, entity_id, details, at)",
        audit,
        |i, out| {
            let action = ["create", "update", "view", "delete"][rng.below(4) as usize];
            write!(
            out,
            "({i},{},'{action}','patient',{},'{{\"ip\": \"10.0.{}.{}\", \"fields\": [\"name\", \"phone\"], \"ok\": true, \"n\": {}}}','2025-05-{:02} {:02}:{:02}:{:02}.{:06}')",
            1 + rng.below(users),
            1 + rng.below(patients),
            rng.below(256),
            rng.below(256),
            rng.below(1000),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1_000_000)
        )
        },
    )?;
    batch(
        w,
        "reminder_log (patient_id, sent_at, channel)",
        reminders,
        |_, out| {
            write!(
                out,
                "({},'2025-04-{:02} 09:00:00','{}')",
                1 + rng.below(patients),
                1 + rng.below(28),
                ["sms", "email", "whatsapp"][rng.below(3) as usize]
            )
        },
    )?;
    w.write_all(OBJECTS.as_bytes())
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

fn batch(
    w: &mut dyn Write,
    table: &str,
    rows: u64,
    mut row: impl FnMut(u64, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 20);
    for start in (1..=rows).step_by(1000) {
        buf.clear();
        write!(buf, "INSERT INTO {table} VALUES ")?;
        for i in start..(start + 1000).min(rows + 1) {
            if i > start {
                buf.push(b',');
            }
            row(i, &mut buf)?;
        }
        buf.extend_from_slice(b";\n");
        w.write_all(&buf)?;
    }
    Ok(())
}

const SCHEMA: &str = r#"SET NAMES utf8mb4;
SET FOREIGN_KEY_CHECKS = 0;
CREATE TABLE users (
  id INT PRIMARY KEY,
  email VARCHAR(190) NOT NULL UNIQUE,
  name VARCHAR(100) NOT NULL,
  role ENUM('admin','dentist','staff') NOT NULL,
  password_hash BINARY(32) NOT NULL,
  created_at DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE patients (
  id INT PRIMARY KEY,
  medical_record_no VARCHAR(20) NOT NULL UNIQUE,
  name VARCHAR(120) NOT NULL,
  birth_date DATE,
  phone VARCHAR(30),
  photo MEDIUMBLOB,
  notes TEXT,
  created_by INT,
  KEY (name),
  FOREIGN KEY (created_by) REFERENCES users(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE appointments (
  id INT PRIMARY KEY,
  patient_id INT NOT NULL,
  dentist_id INT NOT NULL,
  starts_at DATETIME NOT NULL,
  status ENUM('scheduled','done','cancelled','no_show') NOT NULL,
  notes VARCHAR(255),
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY (starts_at),
  FOREIGN KEY (patient_id) REFERENCES patients(id),
  FOREIGN KEY (dentist_id) REFERENCES users(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE treatments (
  id INT PRIMARY KEY,
  appointment_id INT NOT NULL,
  code VARCHAR(10) NOT NULL,
  description VARCHAR(200),
  cost DECIMAL(12,2) NOT NULL,
  tooth TINYINT UNSIGNED,
  FOREIGN KEY (appointment_id) REFERENCES appointments(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE medical_documents (
  id INT PRIMARY KEY,
  patient_id INT NOT NULL,
  storage_provider ENUM('r2','local') NOT NULL,
  storage_bucket VARCHAR(100),
  storage_key VARCHAR(500) NOT NULL,
  sha256 CHAR(64) NOT NULL,
  size_bytes BIGINT NOT NULL,
  content_type VARCHAR(100),
  uploaded_at DATETIME NOT NULL,
  KEY (storage_key(100)),
  FOREIGN KEY (patient_id) REFERENCES patients(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE audit_log (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  user_id INT,
  action VARCHAR(20) NOT NULL,
  entity VARCHAR(40) NOT NULL,
  entity_id INT,
  details JSON,
  at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE reminder_log (
  patient_id INT NOT NULL,
  sent_at DATETIME NOT NULL,
  channel VARCHAR(20) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
"#;

const OBJECTS: &str = r#"SET FOREIGN_KEY_CHECKS = 1;
CREATE VIEW patient_balance AS
  SELECT p.id AS patient_id, p.name, COALESCE(SUM(t.cost), 0) AS total_cost, COUNT(t.id) AS treatments
  FROM patients p LEFT JOIN appointments a ON a.patient_id = p.id LEFT JOIN treatments t ON t.appointment_id = a.id
  GROUP BY p.id, p.name;
CREATE VIEW local_documents AS
  SELECT id, patient_id, storage_key FROM medical_documents WHERE storage_provider = 'local';
DELIMITER ;;
CREATE TRIGGER appointments_audit AFTER UPDATE ON appointments FOR EACH ROW
BEGIN
  IF NEW.status <> OLD.status THEN
    INSERT INTO audit_log (user_id, action, entity, entity_id, details, at)
    VALUES (NULL, 'status', 'appointment', NEW.id, JSON_OBJECT('from', OLD.status, 'to', NEW.status), NOW(6));
  END IF;
END;;
CREATE PROCEDURE patient_summary(IN pid INT)
BEGIN
  SELECT p.name, COUNT(a.id) AS appointments FROM patients p LEFT JOIN appointments a ON a.patient_id = p.id
  WHERE p.id = pid GROUP BY p.name;
END;;
CREATE EVENT purge_old_reminders ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00' DISABLE
  DO DELETE FROM reminder_log WHERE sent_at < NOW() - INTERVAL 2 YEAR;;
DELIMITER ;
"#;
