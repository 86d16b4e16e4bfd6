// Package ads1115 reads the Texas Instruments ADS1115, a 16-bit, 4-channel
// I²C delta-sigma ADC, in single-shot mode, and maps what it reads linearly
// onto engineering units (Scale), such as a 4–20 mA pressure transmitter
// read across a 250 Ω shunt (1–5 V) onto 0–10 bar.
//
// Datasheet: https://www.ti.com/lit/ds/symlink/ads1115.pdf (SBAS444, the
// ADS111x family). Two registers are used: the conversion register (pointer
// 0x00, the result as a 16-bit two's complement number) and the config
// register (pointer 0x01): OS[15], MUX[14:12], PGA[11:9], MODE[8], DR[7:5],
// COMP_MODE[4], COMP_POL[3], COMP_LAT[2], COMP_QUE[1:0]. Its reset value is
// 0x8583.
//
// # Why not periph.io/x/devices/v3/ads1x15
//
// periph's ads1x15 starts a conversion and sleeps 1/DR before reading the
// result. The datasheet gives the data rate a tolerance of ±10%, and a part
// that is slower returns the previous conversion: with several channels, the
// previous channel's value (hybridgroup/gobot#827,
// adafruit/Adafruit_Python_ADS1x15#12). This package polls the OS bit of the
// config register instead, which reads 1 once the conversion is done, and
// every wait takes a context.
//
// # Notes from the datasheet
//
//   - The inputs must stay between GND−0.3 V and VDD+0.3 V whatever the PGA
//     range: ±6.144 V lets a 5 V signal through on a 5 V supply, it does not
//     allow more than VDD.
//   - A single-shot read is: write the config with OS=1 and MODE=1, poll the
//     config until OS reads 1, read the conversion register. The device
//     powers down between reads.
//   - The ADDR pin selects the address: GND 0x48, VDD 0x49, SDA 0x4a, SCL 0x4b.
//   - One LSB is FS/32768: 125 µV at ±4.096 V, 187.5 µV at ±6.144 V.
package ads1115
