// Package bmx280 reads the Bosch BME280 (temperature, pressure, humidity)
// and BMP280 (temperature, pressure) over I²C, through periph's bmxx80
// driver, and checks that the chip found is the one configured.
//
// Datasheets:
//   - BME280: https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bme280-ds002.pdf
//   - BMP280: https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bmp280-ds001.pdf
//
// The registers that matter: chip id 0xD0 (0x58 BMP280, 0x60 BME280; 0x55
// is the older BMP180), calibration 0x88–0xA1 (dig_T1..dig_P9, then dig_H1)
// and 0xE1–0xE7 (dig_H2..dig_H6, BME280 only), ctrl_hum 0xF2, status 0xF3
// (bit 3 "measuring"), ctrl_meas 0xF4 (osrs_t[7:5], osrs_p[4:2],
// mode[1:0]: 00 sleep, 01 forced, 11 normal), config 0xF5, and the data
// burst 0xF7–0xFE (press_msb..hum_lsb), read in one go so that the values
// belong to the same measurement.
//
// Notes and errata:
//   - ctrl_hum only takes effect after a write to ctrl_meas (BME280 §5.4.3),
//     so the driver writes ctrl_meas last.
//   - Many boards sold as "BME280" carry a BMP280 (chip id 0x58, no humidity).
//     New refuses a chip that is not the configured model, so such a board
//     is reported instead of publishing readings without humidity.
//   - The address is 0x76 (SDO to GND) or 0x77 (SDO to VDDIO).
//   - A forced measurement takes 1 ms + 2 ms per oversampling step of each
//     value (+0.5 ms for pressure and humidity); bmxx80 sleeps that long
//     (26 ms with the default 4x, and on a BMP280 too: its delay counts the
//     humidity it does not have), and that sleep does not take a context.
//   - The sensor warms itself a little in normal mode; forced mode, as used
//     here, keeps it asleep between readings.
package bmx280
